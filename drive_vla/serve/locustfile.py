"""Locust user for `drive-vla bench robustness`: POST /plan with the body in $DRIVE_VLA_LOAD_BODY, no wait.

Run by drive_vla.serve.load in its own process (locust patches the standard library with gevent).
"""

import json
import os

from locust import HttpUser, constant, task

with open(os.environ["DRIVE_VLA_LOAD_BODY"], encoding="utf-8") as fh:
    BODY = json.load(fh)


class PlanUser(HttpUser):
    wait_time = constant(0)

    @task
    def plan(self) -> None:
        self.client.post("/plan", json=BODY, timeout=60)
