"""A lone DCGAN or VAE run records the very numbers it recorded before its loop became the one
loop of lone runs and stacks (issue 23): each result's metrics to the last bit, a digest of its
curves, and its run id, recorded from commit 1fb47e1 on an AMD EPYC CPU with torch 2.14.1, one
thread.

Float results depend on the torch build and the CPU's kernels, so the exact comparison runs
where the figures were recorded (the same torch version and CPU model: on an Intel Xeon the VAE's
KL differs in its last bits); tests/test_stacked_runs.py and tests/test_resume_generative.py
check the same runs against each other anywhere.
"""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from suite.provenance import hardware
from tests.helpers import needs_shared
from tests.test_resume_generative import DCGAN, DCGAN_ARM, DCGAN_SET, VAE, VAE_ARM, VAE_SET
from tests.test_stacked_runs import alone, seed_runs

RECORDED_WITH = "2.14.1"
RECORDED_ON = "AMD EPYC"  # the CPU model name (suite/provenance.py hardware) they were recorded on
RECORDED = {
    # name: (experiment, arm, --set overrides, metrics as float.hex, curves digest, run id)
    "dcgan-smoke": (
        DCGAN,
        "adam_dcgan",
        [],
        {
            "eval/collapsed": "0x0.0p+0",
            "eval/fid_classifier": "0x1.4eb7afd2651c4p+1",
            "eval/is_classifier": "0x1.00015689cb5e2p+0",
        },
        "f0021110860709ed",
        "a29a5bf22a166025",
    ),
    # two D steps, flips, a schedule and clipping (tests/test_resume_generative.py)
    "dcgan-resume-set": (
        DCGAN,
        DCGAN_ARM,
        DCGAN_SET,
        {
            "eval/collapsed": "0x0.0p+0",
            "eval/fid_classifier": "0x1.566dca4980bf9p+1",
            "eval/is_classifier": "0x1.0000eb17a4e7ep+0",
        },
        "9c76209dd5eeb7b7",
        "b04afce544c64d45",
    ),
    "vae-smoke": (
        VAE,
        "adam",
        [],
        {
            "test/kl_nats": "0x1.5fbd840000000p+2",
            "test/mse_per_pixel": "0x1.dfff000000000p-3",
            "test/neg_elbo_nats": "0x1.14f5470800000p+9",
            "test/recon_nats": "0x1.1235cc0000000p+9",
        },
        "4d63e5aaed4daf15",
        "6077186fe669016f",
    ),
    # Gaussian likelihood (dequantization noise), KL warm-up, a schedule and clipping
    "vae-resume-set": (
        VAE,
        VAE_ARM,
        VAE_SET,
        {
            "test/bpd": "0x1.08d763aa82467p+3",
            "test/kl_nats": "0x1.90e8000000000p-2",
            "test/mse_per_pixel": "0x1.5752b97829cbcp-4",
            "test/neg_elbo_nats": "0x1.2c4a3c0000000p+7",
            "test/recon_nats": "0x1.2b81c80000000p+7",
        },
        "e8379aac1c71a475",
        "2a90a63f5b3523c1",
    ),
}

pytestmark = [
    needs_shared,
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(
        not torch.__version__.startswith(RECORDED_WITH),
        reason=f"the figures were recorded with torch {RECORDED_WITH}; other builds round "
        "differently",
    ),
    pytest.mark.skipif(
        hardware("cpu")["cpu"] != RECORDED_ON,
        reason=f"the figures were recorded on an {RECORDED_ON} CPU; other CPUs' kernels round "
        "differently",
    ),
]


def curves_digest(curves: dict) -> str:
    return hashlib.sha256(json.dumps(curves, sort_keys=True).encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", list(RECORDED))
def test_a_lone_run_records_what_it_recorded_before(tmp_path, name):
    experiment, arm, overrides, metrics, digest, run_id = RECORDED[name]
    (result,) = alone(seed_runs(experiment, arm, overrides, seeds=1), tmp_path)
    assert result["status"] == "done"
    assert {key: float(value).hex() for key, value in result["metrics"].items()} == metrics
    assert curves_digest(result["curves"]) == digest
    assert result["run_id"] == run_id
