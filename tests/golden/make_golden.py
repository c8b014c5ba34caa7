"""Record the golden values of tests/test_golden.py (run once, before a refactor).

    python tests/golden/make_golden.py   # writes tests/golden/imp_golden.json

The values are what LotteryTicketClassifier produced at the commit that
introduced this file (one torch thread, like the test suite: float sums of
convolutions depend on the thread count); a refactor must reproduce them
exactly.
"""

import json
import os
import sys
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"  # as tests/conftest.py: convolutions depend on it

import torch  # noqa: E402

torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from test_golden import CASES, fingerprint  # noqa: E402

if __name__ == "__main__":
    out = {name: fingerprint(name) for name in CASES}
    path = Path(__file__).with_name("imp_golden.json")
    path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path} ({len(out)} cases)")
