#!/usr/bin/env python3
"""Lays out the ONNX backend test data shipped in the onnx==1.22.0 wheel for
`secure-context conformance`.

- node/: linked as-is (1765 cases, each model.onnx + test_data_set_*/).
- light/: the wheel ships only model + reference output; onnx's runner makes the input with
  Runner.generate_dummy_data (arange(n)/n). We call that same function, so our inputs are the
  ones the references were made for.

Usage: prepare_suites.py OUTDIR   -> prints OUTDIR/node and OUTDIR/light
"""
import os
import shutil
import sys

import onnx
from onnx import numpy_helper
from onnx.backend.test.runner import Runner

ONNX_VERSION = "1.22.0"


def main() -> None:
    if onnx.__version__ != ONNX_VERSION:
        sys.exit(f"onnx=={ONNX_VERSION} is required (it is the last wheel with the node suite); found {onnx.__version__}")
    out = os.path.abspath(sys.argv[1])
    data = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
    os.makedirs(out, exist_ok=True)
    node = os.path.join(out, "node")
    if not os.path.exists(node):
        os.symlink(os.path.join(data, "node"), node)
    light_src = os.path.join(data, "light")
    light = os.path.join(out, "light")
    for f in sorted(os.listdir(light_src)):
        if not f.endswith(".onnx"):
            continue
        name = f[: -len(".onnx")]
        case = os.path.join(light, name)
        sets = os.path.join(case, "test_data_set_0")
        os.makedirs(sets, exist_ok=True)
        shutil.copy(os.path.join(light_src, f), os.path.join(case, "model.onnx"))
        model = onnx.load(os.path.join(light_src, f))
        inits = {i.name for i in model.graph.initializer}
        n = 0
        for x in model.graph.input:
            if x.name in inits:
                continue
            value = Runner.generate_dummy_data(x, seed=0, name=name, random=False)
            tensor = numpy_helper.from_array(value, x.name)
            with open(os.path.join(sets, f"input_{n}.pb"), "wb") as fh:
                fh.write(tensor.SerializeToString())
            n += 1
        for i in range(len(model.graph.output)):
            shutil.copy(os.path.join(light_src, f"{name}_output_{i}.pb"), os.path.join(sets, f"output_{i}.pb"))
    print(node)
    print(light)


if __name__ == "__main__":
    main()
