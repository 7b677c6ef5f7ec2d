//! Setup errors are one clear line and exit code 2, never a panic: a missing ONNX Runtime,
//! a model file that does not match its manifest, a manifest that disagrees with the graph.

mod common;

use std::path::Path;
use std::process::Command;

fn copy_models(to: &Path) {
    let src = common::models_dir().join("imagenet-mobilenetv2");
    let dst = to.join("imagenet-mobilenetv2");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

fn scan_with(models: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tusk"));
    cmd.args(["scan", common::demo_dir().join("images").to_str().unwrap()])
        .args(["--db", dir.path().join("t.db").to_str().unwrap(), "--models", models.to_str().unwrap()])
        .args(["--model", "imagenet-mobilenetv2"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
}

fn one_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    lines[0]
}

#[test]
fn missing_onnx_runtime_is_one_line_naming_the_setup_script() {
    let (code, stderr) = scan_with(&common::models_dir(), &[("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")]);
    assert_eq!(code, Some(2), "{stderr}");
    let line = one_line(&stderr);
    assert!(line.contains("scripts/setup-ort.sh") && line.contains("/nonexistent/libonnxruntime.so"), "{line}");
}

#[test]
fn unloadable_onnx_runtime_is_one_line_too() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libonnxruntime.so");
    std::fs::write(&fake, b"not a shared library").unwrap();
    let (code, stderr) = scan_with(&common::models_dir(), &[("ORT_DYLIB_PATH", fake.to_str().unwrap())]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(one_line(&stderr).contains("scripts/setup-ort.sh"), "{stderr}");
}

#[test]
fn model_file_not_matching_its_sha256_names_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    copy_models(dir.path());
    let toml = dir.path().join("imagenet-mobilenetv2/model.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    let start = text.find("sha256 = \"").unwrap() + 10;
    let mut changed = text.clone();
    changed.replace_range(start..start + 4, "0000");
    std::fs::write(&toml, changed).unwrap();
    let (code, stderr) = scan_with(dir.path(), &[]);
    assert_eq!(code, Some(2), "{stderr}");
    let line = one_line(&stderr);
    assert!(line.contains("model.toml") && line.contains("`sha256`"), "{line}");
}

#[test]
fn manifest_disagreeing_with_the_graph_names_the_field() {
    for (from, to, field) in [
        ("name = \"input\"", "name = \"pixels\"", "`input.name`"),
        ("classes = 1000", "classes = 1001", "`output.classes`"),
        ("width = 224", "width = 256", "`input`"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        copy_models(dir.path());
        let toml = dir.path().join("imagenet-mobilenetv2/model.toml");
        let text = std::fs::read_to_string(&toml).unwrap().replacen(from, to, 1);
        std::fs::write(&toml, text).unwrap();
        let (code, stderr) = scan_with(dir.path(), &[]);
        assert_eq!(code, Some(2), "{from}: {stderr}");
        let line = one_line(&stderr);
        assert!(line.contains("model.toml") && line.contains(field), "{from}: {line}");
    }
}

#[test]
fn unknown_manifest_key_is_an_error_not_a_silent_default() {
    let dir = tempfile::tempdir().unwrap();
    copy_models(dir.path());
    let toml = dir.path().join("imagenet-mobilenetv2/model.toml");
    let text = std::fs::read_to_string(&toml).unwrap().replace("threshold = 0.5", "treshold = 0.5");
    std::fs::write(&toml, text).unwrap();
    let (code, stderr) = scan_with(dir.path(), &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(one_line(&stderr).contains("treshold"), "{stderr}");
}

#[test]
fn help_documents_every_scan_flag() {
    let out = common::tusk(&["scan", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--db", "--jsonl", "--models", "--model", "--kind", "--workers", "--infer-workers", "--threads", "--batch",
        "--batch-wait-ms", "--queue", "--max-width", "--max-height", "--max-pixels", "--max-alloc-mb",
        "--max-file-mb", "--progress",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}
