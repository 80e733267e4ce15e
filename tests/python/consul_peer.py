"""Drives a Consul agent with py-consul, a third-party client, and checks that the agent
answers as Consul's documentation says. Used against srpc's fake agent, to prove it is
faithful; it passes against a real agent too.

Usage: consul_peer.py HOST PORT. Prints "ok" and exits 0 when every answer is as expected;
leaves the service `py.Kept` registered and passing, for the caller to read.
"""

import sys

import consul


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    c = consul.Consul(host=host, port=port)
    url = "dubbo://127.0.0.1:7000/py.Echo?interface=py.Echo&version=1.0"

    # Register with a TTL check and no status: the check starts critical.
    assert c.agent.service.register(
        "py.Echo",
        service_id="py-1",
        address="127.0.0.1",
        port=7000,
        tags=["dubbo", "version=1.0"],
        meta={"url": url},
        check=consul.Check.ttl("10s"),
    )
    index, nodes = c.health.service("py.Echo", passing=True)
    assert nodes == [], f"a new TTL check is critical: {nodes}"
    assert int(index) >= 1, index

    # Passing it makes it visible, under the check ID Consul gives embedded checks.
    assert c.agent.check.ttl_pass("service:py-1")
    index, nodes = c.health.service("py.Echo", passing=True, tag="dubbo")
    assert len(nodes) == 1, nodes
    service = nodes[0]["Service"]
    assert (service["ID"], service["Port"], service["Meta"]["url"]) == ("py-1", 7000, url), service
    assert any(ch["CheckID"] == "service:py-1" and ch["Status"] == "passing" for ch in nodes[0]["Checks"])

    # A blocking query on the current index waits, then answers the same index.
    again, nodes = c.health.service("py.Echo", passing=True, index=index, wait="1s")
    assert again == index and len(nodes) == 1, (again, index)

    # The catalog lists the service with its tags.
    _, services = c.catalog.services()
    assert set(services["py.Echo"]) >= {"dubbo", "version=1.0"}, services

    # Unknown checks and services are 404s (py-consul answers False for them); a Meta value
    # over 512 characters is a 400.
    assert c.agent.check.ttl_pass("service:nope") is False, "passing an unknown check is a 404"
    try:
        c.agent.service.register("py.Big", service_id="big", meta={"url": "x" * 513}, check=consul.Check.ttl("10s"))
        raise AssertionError("a 513-character meta value must be refused")
    except consul.ConsulException as error:
        assert "Value is too long" in str(error), error

    assert c.agent.service.deregister("py-1")
    _, nodes = c.health.service("py.Echo")
    assert nodes == [], nodes
    assert c.agent.service.deregister("py-1") is False, "deregistering an unknown service is a 404"

    # Left for the caller: a service srpc must read.
    kept = "dubbo://127.0.0.1:7001/py.Kept?interface=py.Kept"
    assert c.agent.service.register(
        "py.Kept", service_id="py-kept", address="127.0.0.1", port=7001,
        tags=["dubbo"], meta={"url": kept}, check=consul.Check.ttl("30s"),
    )
    assert c.agent.check.ttl_pass("service:py-kept")
    print("ok")


if __name__ == "__main__":
    main()
