//! Every mechanism keeps its privacy argument beside its code, under fixed headings.

const DOCS: &[(&str, &str)] = &[
    ("grr", include_str!("../../src/oracle/grr/PRIVACY.md")),
    ("oue", include_str!("../../src/oracle/oue/PRIVACY.md")),
    ("olh", include_str!("../../src/oracle/olh/PRIVACY.md")),
    (
        "hadamard",
        include_str!("../../src/oracle/hadamard/PRIVACY.md"),
    ),
    ("hcms", include_str!("../../src/oracle/hcms/PRIVACY.md")),
    ("duchi", include_str!("../../src/numeric/duchi/PRIVACY.md")),
    (
        "piecewise",
        include_str!("../../src/numeric/piecewise/PRIVACY.md"),
    ),
    (
        "hybrid",
        include_str!("../../src/numeric/hybrid/PRIVACY.md"),
    ),
];

#[test]
fn every_mechanism_has_privacy_utility_and_references() {
    for (mechanism, text) in DOCS {
        let headings: Vec<&str> = text.lines().filter(|line| line.starts_with("# ")).collect();
        assert_eq!(
            headings,
            ["# Privacy", "# Utility", "# References"],
            "{mechanism}'s PRIVACY.md"
        );
        for part in [
            "**Neighbouring relation.**",
            "**Preconditions.**",
            "**Argument.**",
            "**Cost.**",
        ] {
            assert!(text.contains(part), "{mechanism}'s PRIVACY.md lacks {part}");
        }
    }
}
