#!/usr/bin/env python3
"""Offline checks of everything under deploy/ (run by `cargo nextest run`
through coordinator/tests/deploy.rs, and by hand: python3 deploy/check.py).

- Kubernetes: `kubectl kustomize` renders the base and every overlay; every
  rendered object and the Secret template validate strictly against the
  schemas of a pinned Kubernetes version (kubernetes-validate ships them);
  and the properties a run relies on hold (agent count said consistently,
  headless Service selecting the agent pods, probes, resources, deadlines,
  non-root, the Secret's keys).
- Dockerfile: parses (known instructions, continuation lines), every COPY
  source exists in the build context and is not excluded by .dockerignore,
  every workspace member is copied, --from names an earlier stage, the final
  stage runs as a numeric non-root user.
- Compose: `docker-compose config` accepts it, the agent count matches, and
  it builds the same Dockerfile.

Prints one line per failed check and exits 1 if any failed.
"""

import fnmatch
import os
import re
import subprocess
import sys
import tomllib

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K8S = os.path.join(ROOT, "deploy", "k8s")
KUBERNETES_VERSION = "1.32.0"
SECRET_KEYS = {"DATABASE_URL", "LOADGEN_TOKEN"}

failures = []


def fail(msg):
    failures.append(msg)


def run(cmd, env=None):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    except FileNotFoundError:
        hint = {"kubectl": "install kubectl", "kubernetes-validate": "pip install kubernetes-validate==1.37.0",
                "docker-compose": "apt-get install docker-compose", "promtool": "apt-get install prometheus"}.get(cmd[0], "install it")
        raise RuntimeError(f"{cmd[0]} is not installed ({hint}; .ci/run does)")
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip() or p.stdout.strip()}")
    return p.stdout


# --- Kubernetes -------------------------------------------------------------


def kustomizations():
    dirs = [os.path.join(K8S, "base")]
    overlays = os.path.join(K8S, "overlays")
    dirs += [os.path.join(overlays, d) for d in sorted(os.listdir(overlays))]
    return dirs


def find(objs, kind, name):
    for o in objs:
        if o["kind"] == kind and o["metadata"]["name"] == name:
            return o
    fail(f"no {kind} {name}")
    return None


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def check_pod(where, pod, component):
    spec = pod["spec"]
    sc = spec.get("securityContext", {})
    if not sc.get("runAsNonRoot") or not sc.get("runAsUser"):
        fail(f"{where}: {component} pod must run as a numeric non-root user")
    c = spec["containers"][0]
    res = c.get("resources", {})
    if not res.get("requests", {}).get("cpu") or not res.get("requests", {}).get("memory"):
        fail(f"{where}: {component} needs cpu and memory requests")
    if not res.get("limits", {}).get("memory"):
        fail(f"{where}: {component} needs a memory limit")
    env = env_of(c)
    for key in SECRET_KEYS:
        ref = env.get(key, {}).get("valueFrom", {}).get("secretKeyRef", {})
        if ref.get("name") != "loadgen" or ref.get("key") != key:
            fail(f"{where}: {component} must read {key} from Secret loadgen")
    if c.get("args", [None])[0] != component:
        fail(f"{where}: {component} container must run `{component}`, runs {c.get('args')}")
    return c


def check_rendered(where, objs):
    agents = find(objs, "Job", "loadgen-agents")
    coord = find(objs, "Job", "loadgen-coordinator")
    svc = find(objs, "Service", "loadgen-agents")
    run_cm = find(objs, "ConfigMap", "loadgen-run")
    find(objs, "Namespace", "loadgen")
    if not (agents and coord and svc and run_cm):
        return
    namespaces = {o["metadata"].get("namespace") for o in objs if o["kind"] != "Namespace"}
    if namespaces != {"loadgen"}:
        fail(f"{where}: every object belongs in namespace loadgen, found {namespaces}")
    for job in (agents, coord):
        s = job["spec"]
        name = job["metadata"]["name"]
        if "backoffLimit" not in s or not s.get("activeDeadlineSeconds"):
            fail(f"{where}: Job {name} needs backoffLimit and activeDeadlineSeconds")
    a = agents["spec"]
    if a.get("completionMode") != "Indexed":
        fail(f"{where}: agents should be an indexed Job")
    count = a.get("completions")
    cpod = coord["spec"]["template"]
    apod = a["template"]
    agent = check_pod(where, apod, "agent")
    coordinator = check_pod(where, cpod, "coordinator")
    expect = env_of(coordinator).get("LOADGEN_EXPECT_AGENTS", {}).get("value")
    if not (count == a.get("parallelism") and str(count) == expect):
        fail(f"{where}: agent count differs: completions {count}, parallelism {a.get('parallelism')}, "
             f"coordinator LOADGEN_EXPECT_AGENTS {expect}")
    if "--run-once" not in agent.get("args", []):
        fail(f"{where}: agents must run with --run-once so their Job completes")
    probe = agent.get("readinessProbe")
    if not probe:
        fail(f"{where}: agent needs a readiness probe")
    ports = {p.get("name"): p["containerPort"] for p in agent.get("ports", [])}
    listen = env_of(agent).get("AGENT_LISTEN", {}).get("value", "")
    if not listen.startswith("0.0.0.0:") or int(listen.rsplit(":", 1)[1]) not in ports.values():
        fail(f"{where}: agent must listen on all interfaces on its declared port ({listen}, {ports})")
    # The headless Service must select exactly the agent pods, and the
    # coordinator must be pointed at it on its port.
    s = svc["spec"]
    if s.get("clusterIP") != "None":
        fail(f"{where}: the agents' Service must be headless (clusterIP: None)")
    labels = apod["metadata"].get("labels", {})
    if not s.get("selector") or any(labels.get(k) != v for k, v in s["selector"].items()):
        fail(f"{where}: Service selector {s.get('selector')} does not match the agent pods' labels {labels}")
    coord_labels = cpod["metadata"].get("labels", {})
    if all(coord_labels.get(k) == v for k, v in s["selector"].items()):
        fail(f"{where}: Service selector also matches the coordinator pod")
    if apod["spec"].get("subdomain") != svc["metadata"]["name"]:
        fail(f"{where}: agent pods' subdomain should be the Service's name")
    target = run_cm["data"].get("LOADGEN_AGENTS", "")
    svc_port = s["ports"][0]["port"]
    if target != f"{svc['metadata']['name']}:{svc_port}":
        fail(f"{where}: LOADGEN_AGENTS is {target!r}, the Service is {svc['metadata']['name']}:{svc_port}")
    if cpod["spec"].get("restartPolicy") != "Never":
        fail(f"{where}: the coordinator must not restart (a restart would start a second run)")
    # JSON result targets: the log, and any file on a mounted volume.
    mounts = [m["mountPath"] for m in coordinator.get("volumeMounts", [])]
    for target in run_cm["data"].get("LOADGEN_JSON", "").split(","):
        if target != "-" and not any(target.startswith(m.rstrip("/") + "/") for m in mounts):
            fail(f"{where}: LOADGEN_JSON target {target} is not on a mounted volume {mounts}")
    check_metrics(where, objs, apod, agent, cpod, coordinator, run_cm)
    images = {c["image"] for o in (agents, coord) for c in o["spec"]["template"]["spec"]["containers"]}
    if len(images) != 1:
        fail(f"{where}: agents and coordinator must run the same image, found {images}")


def check_metrics(where, objs, apod, agent, cpod, coordinator, run_cm):
    """Both metrics endpoints listen on their declared port, the pods'
    scrape annotations name it, a Service carries it, and a ServiceMonitor
    (when there is one) selects those Services by that port's name."""
    listens = {
        "agent": (apod, agent, env_of(agent).get("AGENT_METRICS_LISTEN", {}).get("value", "")),
        "coordinator": (cpod, coordinator, run_cm["data"].get("LOADGEN_METRICS_LISTEN", "")),
    }
    services = [o for o in objs if o["kind"] == "Service"]
    for component, (pod, container, listen) in listens.items():
        ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        if not listen.startswith("0.0.0.0:") or int(listen.rsplit(":", 1)[1]) != ports.get("metrics"):
            fail(f"{where}: {component} metrics must listen on all interfaces on its 'metrics' port ({listen!r}, {ports})")
            continue
        notes = pod["metadata"].get("annotations", {})
        if notes.get("prometheus.io/scrape") != "true" or notes.get("prometheus.io/port") != str(ports["metrics"]):
            fail(f"{where}: {component} pod's prometheus.io annotations do not name its metrics port: {notes}")
        labels = pod["metadata"].get("labels", {})
        if not any(all(labels.get(k) == v for k, v in svc["spec"].get("selector", {}).items())
                   and any(sp.get("name") == "metrics" for sp in svc["spec"]["ports"]) for svc in services):
            fail(f"{where}: no Service selects the {component} pod with a 'metrics' port")
    for mon in (o for o in objs if o["kind"] == "ServiceMonitor"):
        sel = mon["spec"]["selector"].get("matchLabels", {})
        chosen = [svc["metadata"]["name"] for svc in services
                  if all(svc["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())
                  and any(sp.get("name") == "metrics" for sp in svc["spec"]["ports"])]
        if sorted(chosen) != ["loadgen-agents", "loadgen-coordinator"]:
            fail(f"{where}: ServiceMonitor {mon['metadata']['name']} selects {chosen}, not both metrics Services")
        if [e.get("port") for e in mon["spec"].get("endpoints", [])] != ["metrics"]:
            fail(f"{where}: ServiceMonitor must scrape the port named 'metrics'")


# Custom resources (the Prometheus Operator's) are checked above, not by
# the core Kubernetes schemas.
CUSTOM_API_GROUPS = ("monitoring.coreos.com/",)


def check_k8s(tmp):
    rendered = []
    for d in kustomizations():
        where = os.path.relpath(d, ROOT)
        try:
            out = run(["kubectl", "kustomize", d])
        except RuntimeError as e:
            fail(f"{where}: {e}")
            continue
        objs = [o for o in yaml.safe_load_all(out) if o]
        core = [o for o in objs if not o.get("apiVersion", "").startswith(CUSTOM_API_GROUPS)]
        path = os.path.join(tmp, where.replace("/", "_") + ".yaml")
        with open(path, "w") as f:
            yaml.safe_dump_all(core, f)
        rendered.append(path)
        check_rendered(where, objs)
    secret_path = os.path.join(K8S, "secret.example.yaml")
    with open(secret_path) as f:
        secret = yaml.safe_load(f)
    if set(secret.get("stringData", {})) != SECRET_KEYS or secret["metadata"]["name"] != "loadgen":
        fail(f"secret.example.yaml must define Secret loadgen with keys {sorted(SECRET_KEYS)}")
    try:
        run(["kubernetes-validate", "--strict", "--quiet", "-k", KUBERNETES_VERSION, *rendered, secret_path])
    except RuntimeError as e:
        fail(f"schema validation against Kubernetes {KUBERNETES_VERSION}: {e}")
    return len(rendered)


# --- Dockerfile -------------------------------------------------------------

INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
                "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


def dockerfile_instructions(text):
    lines, cur = [], ""
    for raw in text.splitlines():
        s = raw.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        lines.append(cur)
        cur = ""
    if cur:
        fail("Dockerfile ends inside a continued line")
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        if word.upper() not in INSTRUCTIONS:
            fail(f"Dockerfile: unknown instruction {word!r}")
        out.append((word.upper(), rest.strip()))
    return out


def ignored(path, patterns):
    parts = path.split("/")
    for p in patterns:
        p = p.rstrip("/")
        if p.startswith("**/"):
            if fnmatch.fnmatch(parts[-1], p[3:]):
                return True
        elif any(fnmatch.fnmatch("/".join(parts[: i + 1]), p) for i in range(len(parts))):
            return True
    return False


def check_dockerfile():
    path = os.path.join(ROOT, "deploy", "docker", "Dockerfile")
    with open(path) as f:
        ins = dockerfile_instructions(f.read())
    with open(os.path.join(ROOT, ".dockerignore")) as f:
        patterns = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        members = set(tomllib.load(f)["workspace"]["members"])
    stages, copied, user, exposed, env = [], set(), None, set(), {}
    if not ins or ins[0][0] not in ("FROM", "ARG"):
        fail("Dockerfile must start with FROM (or ARG)")
    for word, rest in ins:
        if word == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", rest, re.IGNORECASE)
            if not m:
                fail(f"Dockerfile: malformed FROM {rest!r}")
                continue
            stages.append(m.group(2))
            user, exposed, env = None, set(), {}
        elif word in ("COPY", "ADD"):
            args = rest.split()
            flags = [a for a in args if a.startswith("--")]
            paths = [a for a in args if not a.startswith("--")]
            if len(paths) < 2:
                fail(f"Dockerfile: {word} needs a source and a destination: {rest!r}")
                continue
            src_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
            if src_stage is not None:
                if src_stage not in stages[:-1]:
                    fail(f"Dockerfile: COPY --from={src_stage} names no earlier stage")
                continue
            for src in paths[:-1]:
                rel = os.path.normpath(src)
                if not os.path.exists(os.path.join(ROOT, rel)):
                    fail(f"Dockerfile: COPY source {src} does not exist in the build context")
                elif ignored(rel, patterns):
                    fail(f"Dockerfile: COPY source {src} is excluded by .dockerignore")
                copied.add(rel)
        elif word == "USER":
            user = rest.split(":")[0]
        elif word == "EXPOSE":
            exposed |= {int(p.split("/")[0]) for p in rest.split()}
        elif word == "ENV":
            for m in re.finditer(r"(\w+)=(\S+)", rest):
                env[m.group(1)] = m.group(2)
    for m in sorted(members - copied):
        fail(f"Dockerfile: workspace member {m} is not copied into the build stage")
    for f in ("Cargo.toml", "Cargo.lock", "proto"):
        if f not in copied:
            fail(f"Dockerfile: {f} is not copied into the build stage")
    if not user or not user.isdigit() or user == "0":
        fail(f"Dockerfile: the final stage must run as a numeric non-root USER, has {user!r}")
    listen = env.get("AGENT_LISTEN", "")
    if not listen.startswith("0.0.0.0:") or int(listen.rsplit(":", 1)[1]) not in exposed:
        fail(f"Dockerfile: AGENT_LISTEN {listen!r} must be all interfaces on an EXPOSEd port {exposed}")
    return len(ins)


# --- Compose ----------------------------------------------------------------


def check_compose():
    path = os.path.join(ROOT, "deploy", "docker", "compose.yaml")
    env = dict(os.environ, POSTGRES_PASSWORD="check-only", LOADGEN_TOKEN="check-only-token-0123")
    try:
        out = run(["docker-compose", "-f", path, "config"], env=env)
    except RuntimeError as e:
        fail(f"compose.yaml: {e}")
        return
    doc = yaml.safe_load(out)
    svc = doc["services"]
    replicas = svc["agent"].get("deploy", {}).get("replicas")
    cenv = svc["coordinator"]["environment"]
    if str(replicas) != str(cenv.get("LOADGEN_EXPECT_AGENTS")):
        fail(f"compose.yaml: {replicas} agent replicas but LOADGEN_EXPECT_AGENTS {cenv.get('LOADGEN_EXPECT_AGENTS')}")
    if cenv.get("LOADGEN_AGENTS") != "agent:7000":
        fail("compose.yaml: the coordinator must find the agents by their service name")
    for name in ("agent", "coordinator"):
        b = svc[name].get("build", {})
        if os.path.normpath(os.path.join(b.get("context", ""), b.get("dockerfile", ""))) != os.path.join(
            ROOT, "deploy", "docker", "Dockerfile"
        ):
            fail(f"compose.yaml: {name} must build deploy/docker/Dockerfile from the repository root")


# --- Grafana and Prometheus ---------------------------------------------------


def check_grafana():
    """The scrape config is one promtool accepts; the dashboard's panels
    each query the Prometheus datasource variable, and the fault annotation
    is there. (Whether each query returns data is tested against a real
    Prometheus: coordinator/tests/watch.)"""
    grafana = os.path.join(ROOT, "deploy", "grafana")
    try:
        run(["promtool", "check", "config", os.path.join(grafana, "prometheus.yml")])
    except RuntimeError as e:
        fail(f"deploy/grafana/prometheus.yml: {e}")
    import json
    with open(os.path.join(grafana, "loadgen-dashboard.json")) as f:
        dash = json.load(f)
    panels = dash.get("panels", [])
    for p in panels:
        targets = p.get("targets", [])
        if not targets or any(not t.get("expr") for t in targets):
            fail(f"dashboard panel {p.get('title')!r} has a target without a query")
        if p.get("datasource", {}).get("uid") != "${datasource}":
            fail(f"dashboard panel {p.get('title')!r} does not use the datasource variable")
    if not any("loadgen_fault_active" in a.get("expr", "") for a in dash.get("annotations", {}).get("list", [])):
        fail("the dashboard does not draw faults as annotations")
    return len(panels)


def main():
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        n = check_k8s(tmp)
    d = check_dockerfile()
    check_compose()
    panels = check_grafana()
    for f in failures:
        print(f"FAIL {f}")
    if failures:
        return 1
    print(f"deploy checks passed: {n} kustomizations rendered and validated against Kubernetes "
          f"{KUBERNETES_VERSION}, {d} Dockerfile instructions, compose.yaml, {panels} dashboard panels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
