#!/usr/bin/env bash
# The wheels benchmarks/gpu/check.sh installs on a GPU machine that has torch but not ragkit's other
# needs (no package index there): ragkit's pinned transformers stack, faiss-cpu and bm25s. Run here,
# in the repo root; .whl/ is git-ignored (add `/.whl/` to .git/info/exclude) and carried to the machine.
set -euo pipefail
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d .whl \
  transformers==5.25.0 huggingface_hub==2.4.0 tokenizers==0.23.3 peft==0.21.2 safetensors==0.8.0 \
  gguf==0.19.0 faiss-cpu==1.15.1 httpx2==2.16.2 httpcore2==2.16.2 truststore tomlkit idna \
  kernels==0.19.1 click==8.5.1 regex==2026.11.19 bm25s==0.3.16 PyStemmer==3.1.0
cp benchmarks/gpu/check.sh .whl/check.sh
du -sh .whl
