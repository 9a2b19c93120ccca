//! Embeds the libtorch library directory as an rpath so binaries run without LD_LIBRARY_PATH.
fn main() {
    println!("cargo:rerun-if-env-changed=DIFFSAMP_TORCH_RPATH");
    if let Ok(dir) = std::env::var("DIFFSAMP_TORCH_RPATH") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
