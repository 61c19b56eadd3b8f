import pytest
import torch

# The tensors here are tiny: threads only add contention (and a 10x slowdown under load).
torch.set_num_threads(1)


@pytest.fixture
def paper_family64():
    from metateleport.tasks import MLPTaskFamily

    return MLPTaskFamily(dtype=torch.float64)
