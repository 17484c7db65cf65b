"""How long publishing to and reading from object storage takes, against SeaweedFS on loopback
(the server the tests use), compared with a local folder: one publish of a run the size of the
default run's files (a 200 kB model stand-in, the forecast tables), and `read_latest`.

    uv run python benchmarks/s3_publish.py [repeats]

Writes benchmarks/results/s3_publish.csv and .md.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forecasting.store import reader, writer  # noqa: E402
from tests.helpers import seaweedfs  # noqa: E402
from tests.helpers.publish_child import run_files  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def measure(output_dir: Path | str, repeats: int) -> dict[str, float]:
    publish, read = [], []
    for index in range(repeats):
        run_id, files, manifest = run_files(index)
        started = time.perf_counter()
        writer.publish_run(output_dir, "bench", run_id, files, manifest)
        publish.append(time.perf_counter() - started)
        started = time.perf_counter()
        reader.read_latest(output_dir, "bench")
        read.append(time.perf_counter() - started)
    return {
        "publish_median_s": statistics.median(publish),
        "publish_max_s": max(publish),
        "read_latest_median_s": statistics.median(read),
        "read_latest_max_s": max(read),
    }


def main(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as folder, seaweedfs.seaweedfs(Path(folder, "s3")) as server:
        os.environ.update(
            AWS_ENDPOINT_URL=server.endpoint,
            AWS_ACCESS_KEY_ID=seaweedfs.ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=seaweedfs.SECRET_KEY,
            AWS_DEFAULT_REGION="us-east-1",
        )
        rows = [
            {"backend": "local folder", **measure(Path(folder, "local"), repeats)},
            {"backend": "SeaweedFS on loopback", **measure(f"s3://{seaweedfs.BUCKET}/b", repeats)},
        ]
    table = pd.DataFrame(rows).round(4)
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "s3_publish.csv", index=False)
    text = table.to_markdown(index=False)
    (RESULTS / "s3_publish.md").write_text(
        f"# Publishing to object storage\n\n`uv run python benchmarks/s3_publish.py {repeats}`, "
        f"{repeats} publishes of a run (forecast tables, 200 kB model stand-in) each.\n\n"
        f"{text}\n"
    )
    print(text)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
