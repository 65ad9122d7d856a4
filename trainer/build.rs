//! Embeds libtorch's directory as an rpath so the binary and its tests run without LD_LIBRARY_PATH, and links
//! libtorch_cuda.so for real when that libtorch can use CUDA: nothing references its symbols directly, so
//! `--as-needed` would otherwise drop it and CUDA would silently be unavailable at runtime.
//!
//! The pip wheel always ships libtorch_cuda.so, but its CUDA libraries (cuBLAS, cuDNN, ...) are separate wheels that a
//! CPU-only setup does not install; linking it then would make the binary fail to start. So by default it is linked
//! when every library it needs resolves (`ldd`), and `SEEDSWEEP_LINK_TORCH_CUDA=1|0` forces the choice.

use std::path::Path;
use std::process::Command;

/// Why libtorch_cuda.so cannot be loaded, or None when it can.
fn unresolved(lib: &Path) -> Option<String> {
    match Command::new("ldd").arg(lib).output() {
        Ok(out) if out.status.success() => {
            let missing: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains("not found"))
                .filter_map(|l| l.split_whitespace().next().map(String::from))
                .collect();
            (!missing.is_empty()).then(|| format!("missing {}", missing.join(", ")))
        }
        Ok(out) => Some(format!(
            "ldd failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run ldd: {e}")),
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=SEEDSWEEP_LINK_TORCH_CUDA");
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!(
            "cargo:warning=torch-sys did not report its libtorch directory; the binary will need LD_LIBRARY_PATH"
        );
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");

    let cuda_lib = Path::new(&lib_dir).join("libtorch_cuda.so");
    let link_cuda = match std::env::var("SEEDSWEEP_LINK_TORCH_CUDA").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ if !cuda_lib.exists() => false,
        _ => match unresolved(&cuda_lib) {
            None => true,
            Some(why) => {
                println!(
                    "cargo:warning=building for CPU only: {} cannot be loaded ({why}); install the CUDA wheels \
                     (scripts/setup-libtorch.sh --cuda) or set SEEDSWEEP_LINK_TORCH_CUDA=1",
                    cuda_lib.display()
                );
                false
            }
        },
    };
    if link_cuda {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-L{lib_dir}");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
