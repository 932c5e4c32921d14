use super::*;

fn epsilon(value: f64) -> Epsilon {
    Epsilon::new(value).unwrap()
}

#[test]
fn order_is_a_power_of_two_above_the_domain() {
    assert_eq!(Hadamard::new(1024, epsilon(1.0)).unwrap().order(), 2048);
    assert_eq!(Hadamard::new(1023, epsilon(1.0)).unwrap().order(), 1024);
    assert_eq!(Hadamard::new(2, epsilon(1.0)).unwrap().order(), 4);
}

#[test]
fn each_value_owns_half_the_columns_and_halves_meet_in_a_quarter() {
    let order = 16;
    for v in 0..15 {
        let owned = (0..order).filter(|&j| Hadamard::owns(v, j)).count();
        assert_eq!(owned, 8);
        for u in 0..15 {
            if u != v {
                let both = (0..order)
                    .filter(|&j| Hadamard::owns(v, j) && Hadamard::owns(u, j))
                    .count();
                assert_eq!(both, 4);
            }
        }
    }
}

#[test]
fn columns_are_uniform_within_each_half() {
    let hadamard = Hadamard::new(6, epsilon(1.0)).unwrap();
    let mut rng = veil_testkit::seeded_rng(6);
    let trials = 160_000_u64;
    let mut counts = [0_u64; 8];
    for _ in 0..trials {
        counts[hadamard.randomize(2, &mut rng).unwrap() as usize] += 1;
    }
    let p = hadamard.support().p_true;
    for (column, &count) in counts.iter().enumerate() {
        let expected = if Hadamard::owns(2, column as u32) {
            p / 4.0
        } else {
            (1.0 - p) / 4.0
        };
        assert!(
            veil_testkit::binomial_consistent(count, trials, expected),
            "{counts:?}"
        );
    }
}
