import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import train_benchmark

from wms.training.settings import TrainSettings


def test_the_time_budget_counts_only_the_validations_that_will_run():
    every_epoch = TrainSettings(validate_every=1)
    every_third = TrainSettings(validate_every=3)
    # 100 s: a pass costs 2 s and a validation 3 s
    assert train_benchmark.fitting_epochs(every_epoch, 100, 2.0, 3.0) == 20
    fitted = train_benchmark.fitting_epochs(every_third, 100, 2.0, 3.0)
    assert fitted > 20
    validations = sum(train_benchmark.validates(e, every_third.with_overrides(epochs=fitted)) for e in range(1, fitted + 1))
    assert fitted * 2.0 + validations * 3.0 <= 100


def test_a_budget_too_small_still_trains_two_epochs():
    assert train_benchmark.fitting_epochs(TrainSettings(), 1, 2.0, 3.0) == 2


def test_the_flops_of_a_training_in_cycles_weigh_each_input_side_by_its_epochs():
    cycles = TrainSettings(cycles="3:0.002:64 1:0.001:128")
    at_64 = train_benchmark.training_flops_per_image("mobilenet_v2", 64)
    at_128 = train_benchmark.training_flops_per_image("mobilenet_v2", 128)
    assert train_benchmark.mean_training_flops(cycles) == (3 * at_64 + at_128) / 4
    assert at_128 > 3 * at_64
