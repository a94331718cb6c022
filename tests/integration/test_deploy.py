#!/usr/bin/env python3
"""test_deploy.py -- static checks of deploy/ for test_deploy.sh.

    test_deploy.py ZDM_SRC

Parses every YAML file in deploy/k8s, the systemd units and the
Containerfile, and prints one line per check: "ok NAME" or "FAIL NAME:
why".  test_deploy.sh turns the lines into assertions.
"""
import configparser
import glob
import os
import re
import shlex
import sys
import urllib.parse

import yaml

SRC = sys.argv[1]
K8S = os.path.join(SRC, "deploy", "k8s")
results = []


def check(name, cond, why=""):
    results.append(("ok " + name) if cond else ("FAIL %s: %s" % (name, why)))


# ---- YAML: every document parses and is a named Kubernetes object
docs = []
for f in sorted(glob.glob(os.path.join(K8S, "*.yaml"))):
    try:
        for d in yaml.safe_load_all(open(f)):
            if d is None:
                continue
            docs.append((os.path.basename(f), d))
            check("%s: %s has apiVersion, kind, metadata.name" % (os.path.basename(f), d.get("kind")),
                  all(k in d for k in ("apiVersion", "kind")) and "name" in d.get("metadata", {}))
    except yaml.YAMLError as e:
        check("%s parses" % os.path.basename(f), False, str(e).replace("\n", " "))


def find(kind, name=None):
    return [d for _, d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


jobs, crons = find("Job"), find("CronJob")
check("one Job and one CronJob", len(jobs) == 1 and len(crons) == 1, "%d jobs, %d cronjobs" % (len(jobs), len(crons)))
job, cron = jobs[0], crons[0]
pods = {"Job": job["spec"]["template"]["spec"], "CronJob": cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]}
created_by_hand = {("ConfigMap", "zdm-plans")}  # kubectl create configmap --from-file=plans/

# ---- cross-references: every volume, secret key, config map and claim exists
for owner, pod in pods.items():
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    check("%s: no service-account token" % owner, pod.get("automountServiceAccountToken") is False,
          "automountServiceAccountToken is %r" % pod.get("automountServiceAccountToken"))
    sc = pod.get("securityContext", {})
    check("%s: runs as non-root" % owner, sc.get("runAsNonRoot") is True)
    for c in pod["containers"]:
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        for m in c.get("volumeMounts", []):
            check("%s: mount %s has a volume" % (owner, m["name"]), m["name"] in vols)
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                sec = find("Secret", ref["name"])
                check("%s: env %s from Secret %s/%s, which is defined" % (owner, e["name"], ref["name"], ref["key"]),
                      bool(sec) and ref["key"] in sec[0].get("stringData", {}) | sec[0].get("data", {}))
        for v in vols.values():
            for kind, key, field in (("ConfigMap", "configMap", "name"), ("Secret", "secret", "secretName"),
                                     ("PersistentVolumeClaim", "persistentVolumeClaim", "claimName")):
                if key in v:
                    n = v[key][field]
                    ok = bool(find(kind, n)) or (kind, n) in created_by_hand
                    check("%s: volume %s -> %s %s is defined" % (owner, v["name"], kind, n), ok,
                          "no %s named %s in deploy/k8s" % (kind, n))
                    for it in v[key].get("items", []):
                        obj = find(kind, n)
                        keys = (obj[0].get("data") or {}) | (obj[0].get("stringData") or {}) if obj else {}
                        check("%s: %s %s has key %s" % (owner, kind, n, it["key"]), it["key"] in keys)
        # zdm.toml beside the plans: the project hooks run in this pod too
        args = c["args"]
        plans = args[args.index("--plans") + 1]
        project = os.path.join(os.path.dirname(plans.rstrip("/")), "zdm.toml")
        check("%s: %s mounted beside %s" % (owner, project, plans),
              project in mounts and vols[mounts[project]["name"]].get("configMap", {}).get("name") == "zdm-project"
              and mounts[project].get("subPath") == "zdm.toml",
              "mounts: %s" % sorted(mounts))
        # TLS: the CA the URL names is mounted
        sec = find("Secret", "zdm-db")[0]
        url = sec["stringData"]["url"]
        q = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
        if q.get("sslmode", [""])[0].startswith("verify"):
            ca = q.get("sslrootcert", [""])[0]
            d = os.path.dirname(ca)
            m = mounts.get(d)
            cm = vols[m["name"]].get("configMap", {}).get("name") if m else None
            cmdoc = find("ConfigMap", cm) if cm else []
            check("%s: sslrootcert %s is mounted from a ConfigMap that has it" % (owner, ca or "(none)"),
                  bool(ca) and bool(cmdoc) and os.path.basename(ca) in cmdoc[0]["data"],
                  "url %s; mounts %s" % (url, sorted(mounts)))
        for e in c.get("env", []):
            if e["name"] in ("BACKUP_DIR", "PGPASSWORD_FILE"):
                path = e["value"] if e["name"] == "BACKUP_DIR" else os.path.dirname(e["value"])
                check("%s: %s=%s is a mount" % (owner, e["name"], e["value"]), path in mounts)

# ---- the Job: exits 2, 3, 5 fail it at once; 4 is not a failure
jspec = job["spec"]
rules = jspec.get("podFailurePolicy", {}).get("rules", [])
fail_codes, ignore_codes = set(), set()
cname = pods["Job"]["containers"][0]["name"]
for r in rules:
    oe = r.get("onExitCodes")
    if oe and oe.get("operator") == "In" and oe.get("containerName", cname) == cname:
        (fail_codes if r["action"] == "FailJob" else ignore_codes if r["action"] == "Ignore" else set()).update(oe["values"])
check("Job: podFailurePolicy fails the Job on exits 2, 3 and 5", {2, 3, 5} <= fail_codes, "FailJob on %s" % sorted(fail_codes))
check("Job: exit 4 (SIGTERM) is not counted as a failure", 4 in ignore_codes)
check("Job: exit 1 is retried", 1 not in fail_codes and jspec.get("backoffLimit", 6) > 0)
check("Job: restartPolicy Never (podFailurePolicy needs it)", pods["Job"]["restartPolicy"] == "Never")
jc = pods["Job"]["containers"][0]
args = jc["args"]
listen = args[args.index("--listen") + 1]
port = int(listen.rsplit(":", 1)[1])
check("Job: the endpoint is not on postgres_exporter's port 9187", port != 9187, listen)
named = {p["name"]: p["containerPort"] for p in jc.get("ports", [])}
check("Job: containerPort is the --listen port", port in named.values(), "ports %s, listen %s" % (named, listen))
for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
    p = jc.get(probe, {}).get("httpGet")
    check("Job: %s on /status at the listen port" % probe,
          bool(p) and p["path"] == "/status" and named.get(p["port"], p["port"]) == port, repr(p))
host = listen.rsplit(":", 1)[0]
labels = job["spec"]["template"]["metadata"]["labels"]
nps = find("NetworkPolicy")
covered = [np for np in nps
           if all(labels.get(k) == v for k, v in np["spec"]["podSelector"].get("matchLabels", {}).items())
           and "Ingress" in np["spec"].get("policyTypes", [])
           and all(pp.get("port") == port for rule in np["spec"].get("ingress", []) for pp in rule.get("ports", [{}]))
           and all(rule.get("from") for rule in np["spec"].get("ingress", []))]
check("Job: the endpoint is loopback-only or covered by a NetworkPolicy that admits only chosen peers on it",
      host in ("127.0.0.1", "localhost", "::1") or bool(covered), "listen %s, %d policies" % (listen, len(nps)))
cron_labels = cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
check("CronJob pods are covered by the NetworkPolicy too",
      any(all(cron_labels.get(k) == v for k, v in np["spec"]["podSelector"].get("matchLabels", {}).items()) for np in nps))
cenv = {e["name"]: e.get("value") for e in pods["CronJob"]["containers"][0].get("env", [])}
check("CronJob: BACKUP_KEEP is set", (cenv.get("BACKUP_KEEP") or "").isdigit(), repr(cenv.get("BACKUP_KEEP")))
check("CronJob: a failed run is not retried by Kubernetes (the next run is)", cron["spec"]["jobTemplate"]["spec"].get("backoffLimit") == 0)

# ---- project.example.yaml carries deploy/zdm.toml.example, verbatim
proj = find("ConfigMap", "zdm-project")
example = open(os.path.join(SRC, "deploy", "zdm.toml.example")).read()
check("zdm-project's zdm.toml is deploy/zdm.toml.example", bool(proj) and proj[0]["data"]["zdm.toml"] == example)

# ---- hook paths: relative to /srv/zdm/plans, they land in /srv/zdm/hooks,
# which the image links to where it installs hooks/*.sh
cf = open(os.path.join(SRC, "deploy", "Containerfile")).read()
check("Containerfile: /srv/zdm/hooks points at the installed hooks",
      "ln -s /usr/local/share/zdm/hooks /srv/zdm/hooks" in cf and "/usr/local/share/zdm/hooks/" in cf)
hook_cmds = []
for line in example.splitlines():
    line = line.split("#", 1)[0]
    for s in re.findall(r'"([^"]*)"', line):
        if "/hooks/" in s:
            hook_cmds.append(s.split()[0])
check("zdm.toml.example names hooks", len(hook_cmds) >= 3, repr(hook_cmds))
for h in hook_cmds:
    where = os.path.normpath(os.path.join("/srv/zdm/plans", h))
    ok = where.startswith("/srv/zdm/hooks/") and os.path.isfile(os.path.join(SRC, "hooks", os.path.basename(where)))
    check("hook %s -> %s exists in the image" % (h, where), ok)
m = re.search(r'ARG HOOK_PACKAGES="([^"]*)"', cf)
pk = set(m.group(1).split()) if m else set()
check("Containerfile: the image carries curl and pg_dump for the hooks by default",
      {"curl", "postgresql-client"} <= pk, repr(pk))
check("Containerfile: the hooks are installed", "install -m 0755 /src/hooks/*.sh" in cf)

# ---- systemd
def unit(path):
    cp = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    cp.optionxform = str
    cp.read(path)
    return cp


sd = os.path.join(SRC, "deploy", "systemd")
bf = unit(os.path.join(sd, "zdm-backfill@.service"))
rd = unit(os.path.join(sd, "zdm-run-due.service"))
codes = set(bf["Service"].get("RestartPreventExitStatus", "").split())
check("backfill unit: exits 2, 3, 5 are not restarted", {"2", "3", "5"} <= codes, repr(codes))
check("backfill unit: exit 4 is a clean stop", "4" in bf["Service"].get("SuccessExitStatus", "").split())
check("backfill unit: restarts on failure", bf["Service"].get("Restart") == "on-failure")
interval = bf["Unit"].get("StartLimitIntervalSec", "10s")
check("backfill unit: never gives up on a database that is down (StartLimitIntervalSec=0)",
      interval in ("0", "infinity"), "StartLimitIntervalSec=%s" % interval)
check("backfill unit: waits between restarts", bf["Service"].get("RestartSec", "100ms") not in ("0", "100ms"))
check("run-due unit: the timer is the retry (Restart=no)", rd["Service"].get("Restart", "no") == "no")
text = open(os.path.join(sd, "zdm-backfill@.service")).read()
check("backfill unit: no claim that workers run no hooks", "run no hooks" not in text)
for f in (os.path.join(sd, "zdm.env.example"),):
    for line in open(f):
        if line.startswith("ZDM_DATABASE_URL="):
            q = urllib.parse.parse_qs(urllib.parse.urlparse(line.split("=", 1)[1].strip()).query)
            check("zdm.env.example: verify-full names its CA (sslrootcert)",
                  not q.get("sslmode", [""])[0].startswith("verify") or q.get("sslrootcert"))
env_text = open(os.path.join(sd, "zdm.env.example")).read()
check("zdm.env.example: no webhook token inline", "hooks/XXXX" not in env_text)
timer = open(os.path.join(sd, "zdm-run-due.timer")).read()
check("timer: its --at example has an explicit offset", "--at 03:00\"" not in timer and "--at 03:00 " not in timer)

for r in results:
    print(r)
