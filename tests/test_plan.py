import pytest

from augtrain.plan import PlanError, plan_resources
from augtrain.spec import Scaling


def test_two_workers_on_two_cpus_leave_a_cpu_for_data():
    plan = plan_resources(Scaling(workers=2), 2)
    assert plan.workers * plan.cpus_per_worker + plan.data_cpus == 2
    assert plan.data_cpus >= 1 and plan.cpus_per_worker == 0.5 and plan.threads_per_worker == 1
    assert plan.cpus_per_data_task <= plan.data_cpus


def test_big_node_gives_workers_whole_threads():
    plan = plan_resources(Scaling(workers=4), 16)
    assert (plan.data_cpus, plan.cpus_per_worker, plan.threads_per_worker) == (4, 3, 3)


def test_explicit_cpus_per_worker_and_impossible_requests():
    assert plan_resources(Scaling(workers=1, cpus_per_worker=1.5), 2).data_cpus == 0.5
    with pytest.raises(PlanError, match="does not fit 2 CPU"):
        plan_resources(Scaling(workers=2, cpus_per_worker=1), 2)
    with pytest.raises(PlanError, match="needs 2 GPUs; the cluster has 0"):
        plan_resources(Scaling(workers=2, use_gpu=True), 8)
    assert "2 train worker(s) x 0.5 CPU" in plan_resources(Scaling(workers=2), 2).describe()
