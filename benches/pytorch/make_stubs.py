#!/usr/bin/env python3
"""Writes C sources and linker version scripts for stand-in CUDA libraries (see setup.sh).

Usage: make_stubs.py TORCH_LIB_DIR EXTRA_LIB_DIR OUT_DIR

For every shared library that the torch 2.13.0 wheel's Python extension needs but that is not
installed (cuDNN, cuBLAS, NCCL, ...), this collects the dynamic symbols the torch libraries
import from it and emits `<soname>.c` (one aborting function, aliased under every imported
name) and `<soname>.map` (the symbol versions the importers ask for, e.g. `libcublas.so.13`).
setup.sh compiles each pair into OUT_DIR/<soname>. The functions are never reached on the CPU
code path; if one is, the process stops with a message naming the library.

Prints one line per generated stub: `<soname> <number of symbols>`.
"""

import os
import re
import subprocess
import sys

# Unversioned imports are assigned to a missing library by name prefix.
PREFIXES = {
    "libnccl.so.2": ("nccl", "pncclCommInitRank"),
    "libcurand.so.10": ("curand",),
    "libcufile.so.0": ("cuFile",),
    "libcusparseLt.so.0": ("cusparseLt",),
    "libnvshmem_host.so.3": ("nvshmem", "nvshmemx"),
    "libcudnn.so.9": ("cudnn",),
    "libcublas.so.13": ("cublas",),
    "libcublasLt.so.13": ("cublasLt",),
    "libcusparse.so.12": ("cusparse",),
    "libcusolver.so.12": ("cusolver",),
    "libcufft.so.12": ("cufft",),
    "libnvrtc.so.13": ("nvrtc",),
}


def run(cmd, env=None):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout


def dyn_symbols(path):
    """(undefined non-weak names with their version or None, defined names) of a library."""
    undefined, defined = [], set()
    for line in run(["readelf", "--dyn-syms", "--wide", path]).splitlines():
        f = line.split()
        if len(f) < 8 or not f[0].endswith(":"):
            continue
        bind, ndx, name = f[4], f[6], f[7]
        base, _, version = name.partition("@")
        version = version.lstrip("@") or None
        if ndx == "UND":
            if bind != "WEAK" and base:
                undefined.append((base, version))
        else:
            defined.add(base)
    return undefined, defined


def version_files(path):
    """Symbol version name -> the file (soname) that must define it, from .gnu.version_r."""
    out, current = {}, None
    for line in run(["readelf", "-V", "--wide", path]).splitlines():
        m = re.search(r"File: (\S+)", line)
        if m:
            current = m.group(1)
            continue
        m = re.search(r"Name: (\S+)", line)
        if m and current:
            out[m.group(1)] = current
    return out


def ldd(path, env):
    """soname -> resolved path (None when not found) of the dependency closure."""
    deps = {}
    for line in run(["ldd", path], env=env).splitlines():
        m = re.match(r"\s*(\S+) => (not found|(\S+))", line)
        if m:
            deps[m.group(1)] = None if m.group(2) == "not found" else m.group(3)
    return deps


def main():
    torch_lib, extra_lib, out_dir = sys.argv[1:4]
    torch_dir = os.path.dirname(torch_lib)
    # libcaffe2_nvrtc (torch's lazily opened NVRTC wrapper) is left out: it needs the driver
    # library libcuda.so.1, which must stay absent so that the CUDA runtime reports "no
    # driver" instead of calling into a stub.
    importers = sorted(
        os.path.join(torch_lib, f)
        for f in os.listdir(torch_lib)
        if f.endswith(".so") and f != "libcaffe2_nvrtc.so"
    )
    importers += sorted(
        os.path.join(torch_dir, f)
        for f in os.listdir(torch_dir)
        if f.startswith("_C") and f.endswith(".so")
    )
    env = dict(os.environ, LD_LIBRARY_PATH=f"{torch_lib}:{extra_lib}")
    # The interpreter and its libpython provide the Python C API the extension imports.
    missing, present = set(), {sys.executable}
    present |= {p for p in ldd(sys.executable, env).values() if p}
    for lib in importers:
        for soname, resolved in ldd(lib, env).items():
            if resolved is None:
                missing.add(soname)
            else:
                present.add(resolved)
    defined = set()
    for lib in sorted(present | set(importers)):
        defined |= dyn_symbols(lib)[1]

    wanted = {soname: {} for soname in missing}  # soname -> {symbol: version or None}
    unassigned = set()
    for lib in importers:
        files = version_files(lib)
        undefined, _ = dyn_symbols(lib)
        for name, version in undefined:
            owner = files.get(version) if version else None
            if owner in wanted:
                wanted[owner][name] = version
            elif version is None and name not in defined:
                # Longest matching prefix among the missing libraries.
                best = max(
                    (
                        (len(p), soname)
                        for soname, ps in PREFIXES.items()
                        if soname in wanted
                        for p in ps
                        if name.startswith(p)
                    ),
                    default=None,
                )
                if best:
                    wanted[best[1]].setdefault(name, None)
                else:
                    unassigned.add(name)
    if unassigned:
        # Left undefined: a name that is neither a CUDA library's nor provided by a loaded
        # library would be a surprise worth seeing, not something to paper over.
        print(f"# {len(unassigned)} unversioned imports without a known owner, not stubbed: "
              + " ".join(sorted(unassigned)[:20]), file=sys.stderr)

    os.makedirs(out_dir, exist_ok=True)
    for soname, syms in sorted(wanted.items()):
        stem = os.path.join(out_dir, soname)
        c_ident = re.sub(r"\W", "_", soname)
        lines = [
            "/* Generated by benches/pytorch/make_stubs.py: stand-in for " + soname + ". */",
            "#include <stdio.h>",
            "#include <stdlib.h>",
            f"void diffsamp_stub_{c_ident}(void) {{",
            f'    fputs("diffsamp bench stub: {soname} was called; the CPU benchmark '
            f'should never reach CUDA libraries\\n", stderr);',
            "    abort();",
            "}",
        ]
        for name in sorted(syms):
            lines.append(
                f'void {name}(void) __attribute__((alias("diffsamp_stub_{c_ident}")));'
            )
        with open(stem + ".c", "w") as f:
            f.write("\n".join(lines) + "\n")
        by_version = {}
        for name, version in syms.items():
            by_version.setdefault(version, []).append(name)
        blocks = []
        for version in sorted(v for v in by_version if v):
            names = "".join(f"    {n};\n" for n in sorted(by_version[version]))
            blocks.append(f"{version} {{\n  global:\n{names}}};\n")
        plain = sorted(by_version.get(None, []))
        plain_list = "".join(f"    {n};\n" for n in plain)
        global_part = f"  global:\n{plain_list}" if plain else ""
        blocks.append(f"DIFFSAMP_STUB {{\n{global_part}  local: *;\n}};\n")
        with open(stem + ".map", "w") as f:
            f.write("".join(blocks))
        print(soname, len(syms))


if __name__ == "__main__":
    main()
