#!/usr/bin/env bash
# Checks the packaging material (packaging/, .dockerignore, LICENSE) as far
# as this machine allows: no Docker engine, no Kubernetes cluster, no
# network but PyPI (for PyYAML, only if it is missing).
#
#   scripts/check-packaging.sh        from any directory; exits non-zero on any failure
#
# What it checks:
#   - the container entrypoint: POSIX syntax (sh -n, dash -n), shellcheck if
#     installed, and its behaviour with a fake zab-server on PATH (server id
#     from the StatefulSet ordinal, explicit ids kept, arguments passed on);
#   - packaging/k8s/zab.yaml: the objects, ports and probes agree with each
#     other and with the zab.toml the ConfigMap embeds; the Kubernetes
#     schemas too, if the `kubernetes-validate` Python package is installed;
#   - the systemd unit: `systemd-analyze verify` (with the binary path
#     pointed at a stub), or the required keys with Python if there is no
#     systemd-analyze;
#   - packaging/Dockerfile: every path it copies exists and is not excluded
#     by .dockerignore, every workspace member is copied, it builds and
#     installs zab-server and zabctl;
#   - LICENSE is the complete Apache License 2.0.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

failures=0
pass() { echo "  ok    $*"; }
fail() { echo "  FAIL  $*"; failures=$((failures + 1)); }
skip() { echo "  skip  $*"; }

# ---------------------------------------------------------------------------
echo "entrypoint: packaging/docker-entrypoint.sh"
EP=packaging/docker-entrypoint.sh
if [ -x "$EP" ]; then pass "is executable"; else fail "is not executable (chmod 755 $EP)"; fi
if sh -n "$EP"; then pass "sh -n"; else fail "sh -n"; fi
if command -v dash >/dev/null; then
    if dash -n "$EP"; then pass "dash -n"; else fail "dash -n"; fi
fi
if command -v shellcheck >/dev/null; then
    if shellcheck -s sh "$EP"; then pass "shellcheck -s sh"; else fail "shellcheck -s sh"; fi
else
    skip "shellcheck is not installed"
fi

# Fake tools that print what they were started with.
mkdir -p "$TMP/bin"
for tool in zab-server zabctl; do
    cat > "$TMP/bin/$tool" <<EOF
#!/bin/sh
echo "exe=$tool"
echo "args=\$*"
echo "id=\${ZAB_SERVER_ID:-<unset>}"
EOF
    chmod 755 "$TMP/bin/$tool"
done

# run_ep EXPECTED_ID EXPECTED_EXE EXPECTED_ARGS DESCRIPTION -- ENV... -- ARGS...
run_ep() {
    local want_id=$1 want_exe=$2 want_args=$3 what=$4
    shift 4
    [ "$1" = -- ] && shift
    local envs=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    local out
    if ! out="$(env -i PATH="$TMP/bin:/usr/bin:/bin" "${envs[@]}" sh "$EP" "$@" 2>"$TMP/ep.err")"; then
        fail "$what: the entrypoint failed: $(cat "$TMP/ep.err")"
        return
    fi
    local got_exe got_args got_id
    got_exe="$(sed -n 's/^exe=//p' <<<"$out")"
    got_args="$(sed -n 's/^args=//p' <<<"$out")"
    got_id="$(sed -n 's/^id=//p' <<<"$out")"
    if [ "$got_exe" = "$want_exe" ] && [ "$got_args" = "$want_args" ] && [ "$got_id" = "$want_id" ]; then
        pass "$what: $want_exe $want_args, ZAB_SERVER_ID=$want_id"
    else
        fail "$what: got '$got_exe $got_args' with ZAB_SERVER_ID=$got_id, want '$want_exe $want_args' with $want_id"
    fi
}
DEF="--config /etc/zab/zab.toml"
run_ep 3 zab-server "$DEF" "HOSTNAME=zab-2 -> id 3" -- HOSTNAME=zab-2 --
run_ep 1 zab-server "$DEF" "HOSTNAME=zab-0 -> id 1" -- HOSTNAME=zab-0 --
run_ep 11 zab-server "$DEF" "HOSTNAME=my-zab-10 -> id 11" -- HOSTNAME=my-zab-10 --
run_ep 7 zab-server "$DEF" "explicit ZAB_SERVER_ID kept" -- HOSTNAME=zab-2 ZAB_SERVER_ID=7 --
run_ep "<unset>" zab-server "$DEF" "no ordinal in HOSTNAME=zab-x" -- HOSTNAME=zab-x --
run_ep "<unset>" zab-server "$DEF" "no ordinal in HOSTNAME=3f2a9c0d1e" -- HOSTNAME=3f2a9c0d1e --
run_ep 2 zab-server "--config /tmp/z.toml --data-dir /d --check-config" "ZAB_CONFIG and flags passed on" \
    -- HOSTNAME=zab-1 ZAB_CONFIG=/tmp/z.toml -- --data-dir /d --check-config
run_ep 1 zab-server "inspect /var/lib/zab" "inspect goes to zab-server" -- HOSTNAME=zab-0 -- inspect /var/lib/zab
run_ep 1 zab-server "verify-backup /b" "verify-backup goes to zab-server" -- HOSTNAME=zab-0 -- verify-backup /b
printf 'id = 1\ndata_dir = "/d"\n[[servers]]\nid = 2\n' > "$TMP/with-id.toml"
printf 'data_dir = "/d"\n[[servers]]\nid = 2\n' > "$TMP/without-id.toml"
run_ep "<unset>" zab-server "--config $TMP/with-id.toml" "an id in the file is not overridden" \
    -- HOSTNAME=zab-1 ZAB_CONFIG="$TMP/with-id.toml" --
run_ep 2 zab-server "--config $TMP/without-id.toml" "a server's id in [[servers]] is not the file's id" \
    -- HOSTNAME=zab-1 ZAB_CONFIG="$TMP/without-id.toml" --
run_ep 1 zabctl "--servers zab:2181 ls /" "other commands run as given" -- HOSTNAME=zab-0 -- zabctl --servers zab:2181 ls /

# ---------------------------------------------------------------------------
echo "python: PyYAML and tomllib"
if ! python3 -c 'import yaml' 2>/dev/null; then
    echo "  PyYAML is missing: pip install pyyaml"
    python3 -m pip install --quiet pyyaml
fi
python3 -c 'import yaml, tomllib' && pass "yaml and tomllib import"

# ---------------------------------------------------------------------------
echo "kubernetes: packaging/k8s/zab.yaml"
if python3 - packaging/k8s/zab.yaml <<'PY'; then :; else failures=$((failures + 1)); fi
import sys, tomllib, yaml

path = sys.argv[1]
text = open(path).read()
bad = 0

def ok(msg):
    print(f"  ok    {msg}")

def check(cond, msg):
    global bad
    if cond:
        ok(msg)
    else:
        print(f"  FAIL  {msg}")
        bad += 1

docs = [d for d in yaml.safe_load_all(text) if d]
by = {}
for d in docs:
    by.setdefault(d["kind"], []).append(d)
kinds = sorted(by)
check(sorted(kinds) == ["ConfigMap", "PodDisruptionBudget", "Service", "StatefulSet"],
      f"kinds: {', '.join(f'{k} x{len(by[k])}' for k in kinds)}")
check(all("namespace" not in d["metadata"] for d in docs), "no object names a namespace")
check("create secret generic zab-peer-secret" in text
      and "--from-file=peer-secret=" in text,
      "the Secret's creation is explained in a comment")

services = {s["metadata"]["name"]: s for s in by.get("Service", [])}
peers, client_svc = services.get("zab-peers"), services.get("zab")
check(peers is not None and client_svc is not None, "Services zab-peers and zab exist")
check(peers["spec"].get("clusterIP") == "None", "zab-peers is headless (clusterIP: None)")
check(peers["spec"].get("publishNotReadyAddresses") is True, "zab-peers publishes not-ready addresses")
peer_ports = {p["name"]: p["port"] for p in peers["spec"]["ports"]}
check(peer_ports == {"peer": 2888, "client": 2181, "admin": 8080},
      f"zab-peers ports {peer_ports}")
client_ports = {p["name"]: p["port"] for p in client_svc["spec"]["ports"]}
check(client_ports == {"client": 2181}, f"zab ports {client_ports}")

(sts,) = by["StatefulSet"]
spec = sts["spec"]
name = sts["metadata"]["name"]
check(name == "zab" and spec["serviceName"] == "zab-peers", "StatefulSet zab, serviceName zab-peers")
check(spec["replicas"] == 3, "3 replicas")
check(spec.get("podManagementPolicy") == "Parallel", "podManagementPolicy Parallel")
check(spec.get("updateStrategy", {}).get("type") == "RollingUpdate", "updateStrategy RollingUpdate")
labels = spec["selector"]["matchLabels"]
tmpl = spec["template"]
check(all(tmpl["metadata"]["labels"].get(k) == v for k, v in labels.items()),
      "the pod template carries the selector's labels")
for svc in (peers, client_svc):
    check(svc["spec"]["selector"] == labels, f"Service {svc['metadata']['name']} selects the pods")
(pdb,) = by["PodDisruptionBudget"]
check(pdb["spec"].get("maxUnavailable") == 1 and pdb["spec"]["selector"]["matchLabels"] == labels,
      "PodDisruptionBudget: maxUnavailable 1 over the pods")

pod = tmpl["spec"]
sc = pod.get("securityContext", {})
check(sc.get("runAsUser") == 10001 and sc.get("fsGroup") == 10001,
      "pod runs as uid 10001, fsGroup 10001")
check(pod.get("terminationGracePeriodSeconds") == 30, "terminationGracePeriodSeconds 30")
(c,) = pod["containers"]
cports = {p["name"]: p["containerPort"] for p in c["ports"]}
check(cports == {"client": 2181, "peer": 2888, "admin": 8080}, f"container ports {cports}")
for svc in (peers, client_svc):
    for p in svc["spec"]["ports"]:
        tp = p.get("targetPort", p["port"])
        check(tp in cports or tp in cports.values(),
              f"{svc['metadata']['name']}/{p['name']} targets a container port ({tp})")

def probe(kind):
    pr = c.get(kind) or {}
    g = pr.get("httpGet", {})
    port = g.get("port")
    port = cports.get(port, port)
    return g.get("path"), port, pr
for kind, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/livez"), ("startupProbe", "/livez")):
    p, port, _ = probe(kind)
    check((p, port) == (path, 8080), f"{kind}: GET {p} on port {port}")
lp = probe("livenessProbe")[2]
check(lp.get("failureThreshold", 3) * lp.get("periodSeconds", 10) >= 60,
      f"liveness tolerates {lp.get('failureThreshold', 3) * lp.get('periodSeconds', 10)} s of failures")
res = c.get("resources", {})
check(res.get("requests") and res.get("limits"), "resources: requests and limits")
(vct,) = spec["volumeClaimTemplates"]
check(vct["spec"]["resources"]["requests"]["storage"] == "10Gi", "volume claim: 10Gi")
mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
check(mounts.get(vct["metadata"]["name"]) == "/var/lib/zab", "the claim is mounted at /var/lib/zab")

# The config volume: ConfigMap zab.toml and the Secret's peer-secret.
vols = {v["name"]: v for v in pod["volumes"]}
cfg_mount = mounts.get("config")
files, secret_mode = {}, None
for src in vols["config"]["projected"]["sources"]:
    for kind in ("configMap", "secret"):
        if kind in src:
            for item in src[kind]["items"]:
                files[f"{cfg_mount}/{item['path']}"] = (kind, src[kind]["name"], item["key"])
                if kind == "secret":
                    secret_mode = item.get("mode")
check(files.get("/etc/zab/zab.toml") == ("configMap", "zab-config", "zab.toml"),
      "/etc/zab/zab.toml comes from ConfigMap zab-config")
check(files.get("/etc/zab/secret/peer-secret") == ("secret", "zab-peer-secret", "peer-secret"),
      "/etc/zab/secret/peer-secret comes from Secret zab-peer-secret")
check(secret_mode is not None and secret_mode & 0o007 == 0, f"the secret file is not world-readable (mode {oct(secret_mode or 0)})")
env = {e["name"]: e.get("value") for e in c.get("env", [])}
check("ZAB_SERVER_ID" not in env, "ZAB_SERVER_ID is left to the entrypoint (pod ordinal)")
check(env.get("ZAB_CONFIG", "/etc/zab/zab.toml") == "/etc/zab/zab.toml", "ZAB_CONFIG is /etc/zab/zab.toml")

# The embedded zab.toml.
(cm,) = by["ConfigMap"]
check(cm["metadata"]["name"] == "zab-config", "ConfigMap zab-config")
cfg = tomllib.loads(cm["data"]["zab.toml"])
ok("zab.toml parses as TOML")
check("id" not in cfg, "zab.toml has no `id` (it comes from ZAB_SERVER_ID)")
check(cfg.get("data_dir") == "/var/lib/zab", "data_dir = /var/lib/zab")
check(cfg.get("peer_secret_file") in files, f"peer_secret_file {cfg.get('peer_secret_file')} is mounted")
listen = {k: cfg.get(f"listen_{k}") for k in ("peer", "client", "admin")}
check(listen == {"peer": f"0.0.0.0:{cports['peer']}", "client": f"0.0.0.0:{cports['client']}",
                 "admin": f"0.0.0.0:{cports['admin']}"},
      f"listen_* bind the container ports {listen}")
servers = cfg.get("servers", [])
check([s["id"] for s in servers] == list(range(1, spec["replicas"] + 1)),
      f"servers: ids {[s['id'] for s in servers]} match {spec['replicas']} replicas")
want_keys = {"id", "peer", "client", "admin"}
for s in servers:
    ordinal = s["id"] - 1
    host = f"{name}-{ordinal}.{spec['serviceName']}"
    want = {k: f"{host}:{peer_ports[k]}" for k in ("peer", "client", "admin")}
    got = {k: s.get(k) for k in ("peer", "client", "admin")}
    check(got == want and set(s) == want_keys, f"server {s['id']}: {got['peer']}, {got['client']}, {got['admin']}")
sys.exit(1 if bad else 0)
PY
if python3 -c 'import kubernetes_validate' 2>/dev/null; then
    if python3 -m kubernetes_validate --strict --quiet packaging/k8s/zab.yaml; then
        pass "kubernetes-validate --strict (the API schemas)"
    else
        fail "kubernetes-validate --strict"
    fi
else
    skip "API schema validation: the kubernetes-validate Python package is not installed"
fi
skip "kubectl apply: no Kubernetes cluster on this machine"

# ---------------------------------------------------------------------------
echo "systemd: packaging/systemd/zab-server.service"
UNIT=packaging/systemd/zab-server.service
if python3 - "$UNIT" <<'PY'; then :; else failures=$((failures + 1)); fi
import sys
want = {
    "Service": {
        "Type": "simple", "User": "zab",
        "ExecStart": "/usr/local/bin/zab-server --config /etc/zab/zab.toml",
        "ExecStartPre": "/usr/local/bin/zab-server --check-config --config /etc/zab/zab.toml",
        "Restart": "on-failure", "RestartPreventExitStatus": "2",
        "StateDirectory": "zab", "ReadWritePaths": "/var/lib/zab",
        "LimitNOFILE": "65536", "ProtectSystem": "strict", "NoNewPrivileges": "yes",
        "PrivateTmp": "yes", "ProtectHome": "yes", "KillSignal": "SIGTERM",
        "TimeoutStopSec": None,
    },
    "Install": {"WantedBy": "multi-user.target"},
}
section, seen, bad = None, {}, 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line or line.startswith(("#", ";")):
        continue
    if line.startswith("["):
        section = line.strip("[]")
        continue
    key, _, value = line.partition("=")
    seen.setdefault(section, {})[key.strip()] = value.strip()
for sec, keys in want.items():
    for key, value in keys.items():
        got = seen.get(sec, {}).get(key)
        if got is not None and (value is None or got == value):
            print(f"  ok    [{sec}] {key}={got}")
        else:
            print(f"  FAIL  [{sec}] {key}: got {got!r}, want {value or 'a value'!r}")
            bad += 1
sys.exit(1 if bad else 0)
PY
if command -v systemd-analyze >/dev/null; then
    # verify insists that ExecStart's binary exists: point it at a stub.
    mkdir -p "$TMP/systemd"
    printf '#!/bin/sh\nexit 0\n' > "$TMP/bin/zab-server-stub"
    chmod 755 "$TMP/bin/zab-server-stub"
    sed "s#/usr/local/bin/zab-server#$TMP/bin/zab-server-stub#g" "$UNIT" > "$TMP/systemd/zab-server.service"
    if out="$(systemd-analyze verify "$TMP/systemd/zab-server.service" 2>&1)" && [ -z "$out" ]; then
        pass "systemd-analyze verify (binary path pointed at a stub): no findings"
    else
        fail "systemd-analyze verify: $out"
    fi
    if score="$(systemd-analyze security --offline=yes "$TMP/systemd/zab-server.service" 2>/dev/null | tail -1)"; then
        echo "  info  systemd-analyze security: $(LC_ALL=C tr -cd '[:print:]' <<<"$score" | sed 's/^ *//')"
    fi
else
    skip "systemd-analyze verify: systemd-analyze is not installed (keys checked above)"
fi

# ---------------------------------------------------------------------------
echo "docker: packaging/Dockerfile and .dockerignore"
if python3 - packaging/Dockerfile .dockerignore Cargo.toml <<'PY'; then :; else failures=$((failures + 1)); fi
import fnmatch, os, re, shlex, sys, tomllib

dockerfile, ignore_file, manifest = sys.argv[1:4]
bad = 0
def check(cond, msg):
    global bad
    print(f"  {'ok  ' if cond else 'FAIL'}  {msg}")
    bad += 0 if cond else 1

# Join continuation lines; drop comments.
lines, cur = [], ""
for raw in open(dockerfile):
    s = raw.rstrip("\n")
    if not cur and s.lstrip().startswith("#"):
        continue
    if s.endswith("\\"):
        cur += s[:-1] + " "
        continue
    cur += s
    if cur.strip():
        lines.append(cur.strip())
    cur = ""
ins = [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l else "") for l in lines]

froms = [a for i, a in ins if i == "FROM"]
check(len(froms) == 2 and froms[0].startswith("rust:1-bookworm") and froms[1].startswith("debian:bookworm-slim"),
      f"two stages: {' / '.join(froms)}")
ignores = [l.strip() for l in open(ignore_file) if l.strip() and not l.startswith("#")]
def ignored(path):
    path = os.path.normpath(path)
    parts = path.split(os.sep)
    for pat in ignores:
        pat = pat.rstrip("/")
        for i in range(1, len(parts) + 1):
            if fnmatch.fnmatch(os.sep.join(parts[:i]), pat) or fnmatch.fnmatch(os.sep.join(parts[:i]), pat.removeprefix("**/")) \
                    or (pat.startswith("**/") and fnmatch.fnmatch(parts[i - 1], pat[3:])):
                return True
    return False
copied = []
for i, a in ins:
    if i not in ("COPY", "ADD"):
        continue
    words = shlex.split(a)
    if any(w.startswith("--from") for w in words):
        continue
    srcs = [w for w in words if not w.startswith("--")][:-1]
    for s in srcs:
        copied.append(os.path.normpath(s))
        check(os.path.exists(s) and not ignored(s), f"COPY {s}: exists in the repository, not in .dockerignore")
members = tomllib.load(open(manifest, "rb"))["workspace"]["members"]
check(all(m in copied for m in members), f"every workspace member is copied ({', '.join(members)})")
check("Cargo.lock" in copied, "Cargo.lock is copied (--locked)")
for must in ("target", "data", "fuzz", ".git"):
    check(ignored(must), f".dockerignore excludes {must}/")
runs = " ".join(a for i, a in ins if i == "RUN")
check(re.search(r"cargo build --release --locked -p zab-server -p zabctl", runs) is not None,
      "builds: cargo build --release --locked -p zab-server -p zabctl")
copies_from = " ".join(a for i, a in ins if i == "COPY" and "--from" in a)
check("zab-server" in copies_from and "zabctl" in copies_from, "the runtime stage gets zab-server and zabctl")
user = [a for i, a in ins if i == "USER"]
check(user and user[-1].split(":")[0] in ("10001", "zab"), f"runs as a non-root user ({user[-1] if user else 'none'})")
check(re.search(r"--uid 10001", runs) is not None, "user zab has uid 10001")
vol = " ".join(a for i, a in ins if i == "VOLUME")
check("/var/lib/zab" in vol, "VOLUME /var/lib/zab")
exposed = set(" ".join(a for i, a in ins if i == "EXPOSE").split())
check(exposed == {"2181", "2888", "8080"}, f"EXPOSE {' '.join(sorted(exposed))}")
ep = [a for i, a in ins if i == "ENTRYPOINT"]
check(ep and "docker-entrypoint.sh" in ep[-1], f"ENTRYPOINT {ep[-1] if ep else 'none'}")
env = " ".join(a for i, a in ins if i == "ENV")
check("/etc/zab/zab.toml" in env, "the config file is /etc/zab/zab.toml")
sys.exit(1 if bad else 0)
PY
skip "docker build: no Docker engine on this machine"

# ---------------------------------------------------------------------------
echo "license: LICENSE"
if [ -f LICENSE ] \
    && [ "$(grep -m1 -v '^[[:space:]]*$' LICENSE | tr -s ' ' | sed 's/^ //')" = "Apache License" ] \
    && grep -q 'Version 2.0, January 2004' LICENSE \
    && grep -q 'END OF TERMS AND CONDITIONS' LICENSE \
    && grep -q 'APPENDIX: How to apply the Apache License to your work' LICENSE \
    && grep -q 'limitations under the License.' LICENSE \
    && [ "$(grep -cE '^ *[0-9]\. ' LICENSE)" -eq 9 ]; then
    pass "Apache License 2.0: heading, sections 1-9, end of terms, appendix"
else
    fail "LICENSE is not the complete Apache License 2.0 text"
fi
if grep -q '^license = "Apache-2.0"' Cargo.toml; then pass "Cargo.toml says Apache-2.0"; else fail "Cargo.toml's license"; fi

echo "zab-server --check-config on the ConfigMap's zab.toml"
# The server itself validates the embedded configuration, completed as a
# pod's would be: its id from the environment, the secret at a local path.
BIN="${ZAB_SERVER_BIN:-target/debug/zab-server}"
if [ -x "$BIN" ]; then
    python3 -c 'import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc.get("kind") == "ConfigMap":
        open(sys.argv[2], "w").write(doc["data"]["zab.toml"])' packaging/k8s/zab.yaml "$TMP/zab.toml"
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$TMP/peer-secret"
    for id in 1 2 3; do
        if out=$(ZAB_SERVER_ID=$id ZAB_SERVER_PEER_SECRET_FILE="$TMP/peer-secret" \
            "$BIN" --config "$TMP/zab.toml" --check-config 2>&1); then
            pass "pod $((id - 1)): $out"
        else
            fail "pod $((id - 1)): $out"
        fi
    done
else
    echo "  skip  no $BIN (build it first, or set ZAB_SERVER_BIN)"
fi

echo
if [ "$failures" -gt 0 ]; then
    echo "check-packaging: $failures check(s) failed"
    exit 1
fi
echo "check-packaging: all checks passed"
