//! Build facts for `/actuator/info` and `vigil_build_info`: the git commit (or `unknown`
//! when building outside a git checkout, e.g. from a source tarball or a Docker context
//! without `.git`; `VIGIL_GIT_COMMIT` in the build environment then names it) and the
//! build profile.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=VIGIL_GIT_COMMIT");
    let commit = std::env::var("VIGIL_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // A new commit moves the worktree's HEAD reflog: rebuild then (not on every build).
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        for file in ["HEAD", "logs/HEAD"] {
            let path = std::path::Path::new(&dir).join(file);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    // Not VIGIL_*: cargo also sets these in the environment of `cargo test` and `cargo run`,
    // and a member refuses VIGIL_* variables that name no key.
    println!("cargo:rustc-env=BUILD_INFO_GIT_COMMIT={commit}");
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=BUILD_INFO_PROFILE={profile}");
}
