"""Every mechanism must be able to act: SynTIC's auxiliary token reaches the decoder, feature optimisation moves
the features, CXE's weights differ between pairs."""
import torch
import torch.nn.functional as F

from workbench import methods
from workbench.model.captioner import Captioner
from workbench.config import CaptionerConfig
from workbench.config import carryover as R
from workbench.methods import syntic


def _token_sensitivity(token_type: bool) -> float:
    """cos between the embedded aux-token rows for two different unit-scale inputs (1: the input is swamped)."""
    torch.manual_seed(0)
    cfg = CaptionerConfig.preset("sandbox", mixup=False, token_type=token_type, dropout=0.0)
    cap = Captioner(cfg, 50, 128, 128, 1).eval()
    g = torch.randn(4, 128)
    u1, u2 = (F.normalize(torch.randn(4, 1, 128), dim=-1) * 0.5 for _ in range(2))
    e1, _ = cap.embed(g, u1, None, "inference")
    e2, _ = cap.embed(g, u2, None, "inference")
    return float(F.cosine_similarity(e1[:, 1], e2[:, 1], dim=-1).mean().detach())


def test_syntic_aux_token_is_not_swamped_by_the_type_embedding():
    cfg = methods.get("syntic").captioner_config(CaptionerConfig.preset("sandbox"))
    assert cfg.token_type is False
    swamped, seen = _token_sensitivity(True), _token_sensitivity(False)
    assert swamped > 0.9 > seen, (swamped, seen)


def test_feature_optimisation_budgets_of_the_sweep_move_the_features():
    """The paper's lr leaves the features in place; the sweep's larger budgets move them by a good share of the
    distance between two features and lower Eq. 2's loss; the default is the budget val picked."""
    gen = torch.Generator().manual_seed(0)                     # a tight cone, as the sandbox CLIP's
    b = F.normalize(torch.randn(1, 128, generator=gen), dim=-1)
    t = F.normalize(8 * b + torch.randn(512, 128, generator=gen) / 128 ** 0.5, dim=-1)
    s = F.normalize(t + 0.6 * torch.randn(512, 128, generator=gen) / 128 ** 0.5, dim=-1)
    tau = 1 / 800
    (plr, pep), (lr, ep) = R.FO_BUDGETS[0], R.FO_BUDGETS[-1]
    _, paper = syntic.optimize_features(s, t, tau, plr, pep, 256)
    _, big = syntic.optimize_features(s, t, tau, lr, ep, 256)
    assert paper["move_to_spread"] < 0.01 and paper["cos_to_original"] > 0.999
    assert big["move_to_spread"] > 0.1 and big["loss_after"] < 0.5 * big["loss_before"]
    c = methods.get("syntic").config
    assert (c.fo_lr, c.fo_epochs) == R.fo_budget()
    if "fo" in R.selections():                                 # the committed choice is the val-best of its table
        table = R.selections()["fo"]["table"]
        best = max(table, key=lambda r: r["val_CIDEr"])
        assert (best["fo_lr"], best["fo_epochs"]) == R.fo_budget()
