import pytest
import torch

torch.set_num_threads(max(1, torch.get_num_threads()))


@pytest.fixture
def paper_family64():
    from metateleport.tasks import MLPTaskFamily

    return MLPTaskFamily(dtype=torch.float64)
