"""The training budget rule: the first budget whose last quarter adds under 2 % to the kept val CIDEr."""
from workbench.training import plateau_epoch


def test_plateau_epoch_on_a_rising_then_flat_curve():
    curve = [0.03, 0.32, 0.59, 0.88, 1.05, 1.15, 1.30, 1.38, 1.42, 1.44, 1.45, 1.45, 1.46, 1.46, 1.46, 1.47]
    e = plateau_epoch(curve)
    assert e is not None and 9 <= e <= 16
    head = e - -(-e // 4)
    assert max(curve[:e]) <= 1.02 * max(curve[:head])
    assert plateau_epoch([0.1 * i for i in range(1, 17)]) is None        # still climbing: no budget
    assert plateau_epoch(curve, tol=0.5) < e                               # a looser tolerance stops earlier
    dip = [0.0, 0.20, 0.39, 0.33, 0.37, 0.56, 0.64, 0.76, 0.89, 0.93, 0.98, 0.98, 0.99, 0.99]
    assert plateau_epoch(dip) != 4                                          # an early dip is not a plateau
    assert plateau_epoch(dip + [0.99] * 8) > 8
