"""usearch and ONNX Runtime in one process: a server that has searched vectors can
still load the light query path (loaded the other way round, ONNX Runtime's
extension crashed the process while loading)."""

from __future__ import annotations

import subprocess
import sys


def test_vectors_searched_first_then_onnx_runtime_loads():
    script = (
        "import numpy as np\n"
        "from kenning.server.vectors import VectorMatrix\n"
        "m = VectorMatrix(4)\n"
        "m.add([1, 2], np.eye(2, 4, dtype=np.float32))\n"
        "print(m.search(np.array([1, 0, 0, 0], dtype=np.float32), 1)[0][0])\n"
        "import onnxruntime\n"
        "print('loaded', onnxruntime.__version__)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[0] == "1" and "loaded" in done.stdout
