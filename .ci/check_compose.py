#!/usr/bin/env python3
"""Structural check of docker-compose.yml (CI has no Docker engine): the PostgreSQL and
formbridge services with healthchecks, formbridge waiting for a healthy database, its secrets
from an env file, its store on PostgreSQL, its mapping folder mounted read-only where
FORMBRIDGE_CONFIG_DIR points, volumes declared, the replicas profile, every file mounted from
deploy/ present, and nothing but the webhook port (8080) published beyond 127.0.0.1.
Exit 1 with one line per problem."""
import os
import sys

import yaml

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
problems = []


def need(ok, message):
    if not ok:
        problems.append(message)


with open(os.path.join(root, "docker-compose.yml"), encoding="utf-8") as f:
    compose = yaml.safe_load(f)

services = compose.get("services") or {}
declared_volumes = set((compose.get("volumes") or {}).keys())
for name in ("postgres", "formbridge"):
    need(name in services, f"service `{name}` is missing")

postgres = services.get("postgres") or {}
need(str(postgres.get("image", "")).startswith("postgres:16"), "postgres: image must be postgres:16")
need(
    any(str(v).endswith(":/var/lib/postgresql/data") for v in postgres.get("volumes") or []),
    "postgres: its data folder must be on a volume",
)

for name, service in services.items():
    test = (service.get("healthcheck") or {}).get("test")
    need(bool(test), f"{name}: no healthcheck")
    for volume in service.get("volumes") or []:
        source = str(volume).split(":")[0]
        if source.startswith("."):
            need(os.path.exists(os.path.join(root, source)), f"{name}: mounts missing {source}")
        else:
            need(source in declared_volumes, f"{name}: volume `{source}` is not declared")
    for dependency, condition in (service.get("depends_on") or {}).items():
        need(dependency in services, f"{name}: depends on unknown service {dependency}")
        need(
            isinstance(condition, dict) and condition.get("condition") == "service_healthy",
            f"{name}: depends_on {dependency} needs condition: service_healthy",
        )

for name, service in services.items():
    for port in service.get("ports") or []:
        published = str(port)
        if published.split(":")[-1] != "8080":
            need(
                published.startswith("127.0.0.1:"),
                f"{name}: port {published} must be published on 127.0.0.1 only (ops, admin, monitoring)",
            )

replicas = [n for n, s in services.items() if "replicas" in (s.get("profiles") or [])]
need(bool(replicas), "no service in the `replicas` profile")

for name in ["formbridge"] + replicas:
    service = services.get(name) or {}
    env = service.get("environment") or {}
    need(bool(service.get("env_file")), f"{name}: secrets must come from an env_file")
    need(
        (service.get("depends_on") or {}).get("postgres", {}).get("condition") == "service_healthy",
        f"{name}: must wait for a healthy postgres",
    )
    need(
        str(env.get("FORMBRIDGE__STORE__URL", "")).startswith("postgres://"),
        f"{name}: FORMBRIDGE__STORE__URL must be a postgres:// URL",
    )
    need(bool(env.get("FORMBRIDGE__SERVER__OPS_ADDR")), f"{name}: set FORMBRIDGE__SERVER__OPS_ADDR")
    need(env.get("FORMBRIDGE_ENV") == "production", f"{name}: FORMBRIDGE_ENV must be production")
    need(
        any(str(v).endswith(":/data") for v in service.get("volumes") or []),
        f"{name}: /data must be on a volume",
    )
    config_dir = env.get("FORMBRIDGE_CONFIG_DIR")
    need(bool(config_dir), f"{name}: set FORMBRIDGE_CONFIG_DIR (the mounted mapping folder)")
    need(
        f"./config:{config_dir}:ro" in [str(v) for v in service.get("volumes") or []],
        f"{name}: mount ./config read-only at FORMBRIDGE_CONFIG_DIR ({config_dir})",
    )
    test = (service.get("healthcheck") or {}).get("test") or []
    need("healthcheck" in test, f"{name}: the healthcheck should run `formbridge healthcheck`")

need(os.path.exists(os.path.join(root, ".env.example")), ".env.example is missing")

for problem in problems:
    print(f"docker-compose.yml: {problem}")
if problems:
    sys.exit(1)
print(f"docker-compose.yml: {len(services)} services checked, OK")
