# A user's script that starts a worker in code, without an ``if __name__ == "__main__"`` guard:
# task processes must not re-run it.
import os
import sys

from branchwork.worker import WorkerOptions, run
from workers_app import reg

sys.exit(run(reg, WorkerOptions(spec="workers_app:reg", url=os.environ["BRANCHWORK_URL"],
                                queues=["math"], concurrency=2)))
