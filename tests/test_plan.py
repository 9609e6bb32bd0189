import pytest
from augtrain.config.spec import WorkerScaling
from augtrain.training.plan import (
    ELASTIC_CAVEAT,
    PlanError,
    plan_resources,
    shared_plan,
)


def test_two_workers_on_two_cpus_leave_a_cpu_for_data():
    plan = plan_resources(WorkerScaling(workers=2), 2)
    assert plan.workers * plan.cpus_per_worker + plan.data_cpus == 2
    assert plan.data_cpus >= 1 and plan.cpus_per_worker == 0.5 and plan.threads_per_worker == 1
    assert plan.cpus_per_data_task <= plan.data_cpus


def test_big_node_gives_workers_whole_threads():
    plan = plan_resources(WorkerScaling(workers=4), 16)
    assert (plan.data_cpus, plan.cpus_per_worker, plan.threads_per_worker) == (4, 3, 3)


def test_explicit_cpus_per_worker_and_impossible_requests():
    assert plan_resources(WorkerScaling(workers=1, cpus_per_worker=1.5), 2).data_cpus == 0.5
    with pytest.raises(PlanError, match="does not fit 2 CPU"):
        plan_resources(WorkerScaling(workers=2, cpus_per_worker=1), 2)
    with pytest.raises(PlanError, match="needs 2 GPUs; the cluster has 0"):
        plan_resources(WorkerScaling(workers=2, use_gpu=True), 8)
    assert "2 train worker(s) x 0.5 CPU" in plan_resources(WorkerScaling(workers=2), 2).describe()


def test_runs_at_once_share_the_cluster():
    # k-fold on 16 CPUs: 5 folds fit at once (each 1 worker + data), each planned on its share
    concurrent, plan = shared_plan(WorkerScaling(workers=1), 5, 16)
    assert concurrent == 5 and plan.workers == 1 and plan.cpus_per_worker + plan.data_cpus <= 16 / 5
    # a 2-CPU machine trains one fold (or trial) at a time with the whole machine
    assert shared_plan(WorkerScaling(workers=1), 5, 2)[0] == 1
    # no limit (a sweep without max_concurrent): as many as fit
    assert shared_plan(WorkerScaling(workers=2), None, 12)[0] == 4


def test_an_elastic_group_is_planned_for_its_largest_size():
    plan = plan_resources(WorkerScaling(workers=(1, 3)), 8)
    assert plan.workers == (1, 3) and plan.cpus_per_worker == 2 and "1-3 train worker(s) x 2 CPU" in plan.describe()
    assert plan.describe().endswith(ELASTIC_CAVEAT)
    assert ELASTIC_CAVEAT not in plan_resources(WorkerScaling(workers=3), 8).describe()
