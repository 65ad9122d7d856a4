//! The committed CRD must be what the Rust types generate: users `kubectl apply` the file, the operator speaks the types.

#[test]
fn committed_crd_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/seedsweep.yaml");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let generated = seedsweep_crds::crd_yaml();
    if std::env::var_os("SEEDSWEEP_UPDATE_CRD").is_some() {
        std::fs::write(path, &generated).expect("write crds/seedsweep.yaml");
        return;
    }
    assert!(
        committed == generated,
        "crds/seedsweep.yaml is stale: regenerate it with `SEEDSWEEP_UPDATE_CRD=1 cargo test -p seedsweep-crds --test crd_yaml` \
         or `cargo run -p seedsweep-operator -- crd > crds/seedsweep.yaml`"
    );
}

#[test]
fn crd_has_no_cel_rules() {
    // Kubernetes 1.20 rejects x-kubernetes-validations under server-side apply.
    assert!(!seedsweep_crds::crd_yaml().contains("x-kubernetes-validations"));
}
