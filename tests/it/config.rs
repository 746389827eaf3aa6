//! `classproof check-config`: exit 0 with a summary, or exit 2 listing every problem (issue 2).

use crate::support::{Scene, classproof};

fn check(scene: &Scene, rest: &str) -> (i32, String, String) {
    let cfg = scene.config(rest);
    let out = classproof(&["check-config", "--config", &cfg.to_string_lossy()]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_good_config_prints_a_summary() {
    let scene = Scene::new();
    let (code, out, err) = check(
        &scene,
        "[[camera]]\nid = \"front\"\nurl = \"rtsp://admin:pw@10.0.0.2/ch1\"\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("test-box"), "{out}");
    assert!(
        out.contains("rtsp://admin:***@10.0.0.2/ch1"),
        "password must be hidden: {out}"
    );
}

#[test]
fn every_problem_is_listed_with_key_value_and_expectation() {
    let scene = Scene::new();
    let (code, _, err) = check(
        &scene,
        r#"
[[camera]]
id = "front"
url = "http://not-a-camera"
segment = "0s"
colour = "red"

[[camera]]
id = "front"
url = "rtsp://10.0.0.3/ch1"
stall_timeout = "10 parsecs"
"#,
    );
    assert_eq!(code, 2, "{err}");
    for expected in [
        "camera[0].url = \"http://not-a-camera\": expected rtsp://",
        "camera[0].segment = \"0s\": expected a duration from 1s to 1h",
        "camera[0].colour = \"red\": expected no such key",
        "camera[1].id = \"front\": expected an id not used before",
        "camera[1].stall_timeout = \"10 parsecs\": expected a duration",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("classproof.toml: 5 problem(s)"), "{err}");
}

#[test]
fn unwritable_data_dir_is_reported() {
    let scene = Scene::new();
    let cfg = scene.path().join("c.toml");
    // /proc refuses new directories even to root.
    std::fs::write(
        &cfg,
        "[device]\nid = \"x\"\ndata_dir = \"/proc/classproof\"\n[vision]\nenabled = false\n",
    )
    .unwrap();
    let out = classproof(&["check-config", "--config", &cfg.to_string_lossy()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("device.data_dir = \"/proc/classproof\": expected a directory"),
        "{err}"
    );
}

#[test]
fn missing_model_files_are_reported() {
    let scene = Scene::new();
    let (code, _, err) = check(
        &scene,
        &format!(
            "[vision]\nmodels_dir = \"{}\"\n",
            scene.path().join("no-models").display()
        ),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("vision.models_dir"), "{err}");
}

#[test]
fn a_missing_file_and_bad_toml_are_errors_naming_the_file() {
    let out = classproof(&["check-config", "--config", "/nonexistent/classproof.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/classproof.toml"));
    let scene = Scene::new();
    let cfg = scene.path().join("bad.toml");
    std::fs::write(&cfg, "[device\nid = 1").unwrap();
    let out = classproof(&["check-config", "--config", &cfg.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml: not valid TOML"));
}

#[test]
fn the_demo_config_parses() {
    let demo = crate::support::repo().join("deploy/demo.toml");
    let text = std::fs::read_to_string(&demo).unwrap();
    classproof::config::Config::parse(&text, &demo).expect("deploy/demo.toml is valid");
}

#[test]
fn the_example_config_parses() {
    let example = crate::support::repo().join("deploy/classproof.example.toml");
    let text = std::fs::read_to_string(&example).unwrap();
    let c =
        classproof::config::Config::parse(&text, &example).expect("deploy/classproof.example.toml is valid");
    assert_eq!(c.cameras.len(), 2);
}
