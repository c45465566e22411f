def test_send_claim_complete_roundtrip(api):
    sent = api.post("/v1/tasks", json={"name": "hello", "args": {"x": 1}})
    assert sent.status_code == 201, sent.text
    task_id = sent.json()["id"]
    claimed = api.post("/v1/claim", json={"worker_id": "w1", "limit": 5}).json()["tasks"]
    assert [t["id"] for t in claimed] == [task_id]
    assert claimed[0]["attempts"] == 1
    done = api.post(f"/v1/tasks/{task_id}/complete",
                    json={"lease_token": claimed[0]["lease_token"], "result": {"ok": True}})
    assert done.status_code == 200, done.text
    task = api.get(f"/v1/tasks/{task_id}").json()
    assert task["status"] == "succeeded"
    assert task["result"] == {"ok": True}
    assert [e["event"] for e in task["history"]] == ["claimed", "succeeded"]
