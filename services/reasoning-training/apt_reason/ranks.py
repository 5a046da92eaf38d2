"""One rank of a data-parallel reasoning-training job: ``python -m apt_reason.ranks RUN_FOLDER``,
started by torchrun from ``cot.run_cot``, ``verifier.run_verifier`` or ``rl.run_rl``
(apt_model.modeling.distributed); the payload names the operation."""

from __future__ import annotations

from apt_model.modeling.distributed import spec_rank_main

from apt_reason import cot, rl, verifier

if __name__ == "__main__":
    spec_rank_main({"cot": (cot.CotSpec, cot.run_cot), "verifier": (verifier.VerifierSpec, verifier.run_verifier),
                    "rl": (rl.RLSpec, rl.run_rl)})
