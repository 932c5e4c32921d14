"""Writes a stand-in for `veil sample-data`: a synthetic product-analytics events table.

Same columns and distributions as Veil's generator (not the same rows: a different RNG):
user activity log-normal (sigma 1.55) so rows per user are heavy-tailed, a home country
per user drawn Zipf(1.1) over 50 country codes with 85% of a user's rows at home and the
rest drawn from the same Zipf, a log-normal `value` (minutes, median about 12) with 1%
nulls, and `event_time` uniform over the 180 days before 2026-11-01 UTC.

    python make_data.py --rows 1000000 --users 100000 --seed 42 --out events-1m.parquet
"""

import argparse

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

COUNTRIES = [
    "US", "IN", "BR", "DE", "GB", "FR", "JP", "MX", "ID", "IT", "ES", "CA", "TR", "KR", "PL",
    "NG", "AR", "PH", "VN", "EG", "NL", "CO", "ZA", "TH", "AU", "SE", "BE", "CH", "PK", "CL",
    "AT", "PT", "RO", "CZ", "GR", "IL", "DK", "FI", "NO", "IE", "NZ", "HU", "UA", "MA", "KE",
    "PE", "SG", "MY", "BD", "LU",
]
FEATURES = [
    "home", "search", "play", "browse", "profile", "settings", "share", "like", "comment",
    "download", "upload", "notify", "playlist", "subscribe", "cast", "offline", "lyrics",
    "radio", "podcast", "help",
]
END_US = 1_793_491_200_000_000  # 2026-11-01T00:00:00Z
DAYS = 180


def zipf(n, exponent):
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return weights / weights.sum()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    activity = np.exp(1.55 * rng.standard_normal(args.users))
    country_p = zipf(len(COUNTRIES), 1.1)
    home = rng.choice(len(COUNTRIES), size=args.users, p=country_p)

    user = rng.choice(args.users, size=args.rows, p=activity / activity.sum())
    travel = rng.random(args.rows) >= 0.85
    country = home[user].copy()
    country[travel] = rng.choice(len(COUNTRIES), size=int(travel.sum()), p=country_p)
    feature = rng.choice(len(FEATURES), size=args.rows, p=zipf(len(FEATURES), 1.0))
    value = np.round(np.exp(2.5 + rng.standard_normal(args.rows)) * 100.0) / 100.0
    missing = rng.random(args.rows) < 0.01
    span = DAYS * 86_400 * 1_000_000
    event_time = END_US - span + (rng.random(args.rows) * span).astype(np.int64)

    table = pa.table(
        {
            "user_id": pa.array(user.astype(np.int64) + 1, pa.int64()),
            "event_time": pa.array(event_time, pa.timestamp("us", tz="UTC")),
            "country": pa.array(np.array(COUNTRIES, dtype=object)[country], pa.string()),
            "feature": pa.array(np.array(FEATURES, dtype=object)[feature], pa.string()),
            "value": pa.array(value, pa.float64(), mask=missing),
        }
    )
    pq.write_table(table, args.out, compression="snappy")
    print(
        f"{args.rows} rows, {len(np.unique(user))} users with rows, "
        f"{int(missing.sum())} null values -> {args.out}"
    )


if __name__ == "__main__":
    main()
