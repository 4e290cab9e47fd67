#!/usr/bin/env bash
# ragkit's CPU test suite on a GPU machine: every test whose device is "auto" runs on CUDA there.
# Needs benchmarks/gpu/wheels.sh first; run there as `bash .whl/check.sh` with .whl carried.
# TESTS and T (seconds) narrow a rerun. Writes junit.xml and pytest.log under $OUT.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch,transformers,peft,faiss,typer,rich;print('torch',torch.__version__,'transformers',transformers.__version__,'peft',peft.__version__,'faiss',faiss.__version__,'typer',typer.__version__,'cuda',torch.cuda.is_available(),torch.cuda.get_device_name(0))"
python3 -c "from ragkit.device import resolve_device as r; print('auto device:', r(None))" 2>&1 | tail -2
timeout ${T:-420} python3 -m pytest ${TESTS:-tests/adapt tests/encoders tests/index tests/io tests/corpus} -q -m "not slow" -p no:cacheprovider -rfE -n 8 --junitxml=$OUT/junit.xml > $OUT/pytest.log 2>&1
echo "pytest rc=$?"
grep -E "passed|failed|error" $OUT/pytest.log | tail -3
grep -E "^(FAILED|ERROR)" $OUT/pytest.log | head -60
