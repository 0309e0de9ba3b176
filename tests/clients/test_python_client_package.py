"""The chatbot client package (clients/python) stands on its own and agrees with the service:
it builds into a wheel that requires httpx only, it imports nothing but the standard library
and httpx (no Django, nothing of the service's), and its signature test vectors are what the
service's signing code makes today."""

from __future__ import annotations

import ast
import email
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from orders.services.callbacks import signature_verify
from tests.clients import webhook_vectors

PACKAGE = webhook_vectors.ROOT / "clients" / "python"
SOURCE = PACKAGE / "src" / "campaign_client"


def test_the_vectors_are_what_the_services_signing_code_makes() -> None:
    # given: the vectors made now by orders.services.callbacks.signature
    made = webhook_vectors.build()
    # then: the committed file is the same (regenerate it as tests/clients/webhook_vectors.py
    # says when the scheme changes on purpose)
    assert webhook_vectors.VECTORS.read_text("utf-8") == webhook_vectors.render(made)


def test_the_services_own_check_agrees_with_every_vector() -> None:
    for vector in webhook_vectors.build():
        # the service's check takes one secret: a receiver holding several accepts any match
        accepted = any(
            signature_verify(
                secret=secret,
                body=vector["body"].encode(),
                header=vector["header"],
                now=vector["now"],
                tolerance=vector["tolerance"],
            )
            for secret in vector["secrets"]
        )
        assert accepted is vector["valid"], vector["name"]


def test_it_imports_only_the_standard_library_and_httpx() -> None:
    # given every import statement in the package
    found: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    # then
    assert found - set(sys.stdlib_module_names) == {"httpx", "campaign_client"}


def test_importing_it_loads_nothing_of_the_service_or_django(tmp_path: Path) -> None:
    # given: a fresh interpreter outside the repository, the package's source on its path
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import campaign_client; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", probe, str(SOURCE.parent)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    # then
    loaded = set(result.stdout.split())
    ours = {"django", "rest_framework", "celery", "config", "infra", "shop", "coupons", "orders"}
    assert "campaign_client" in loaded
    assert loaded & ours == set()


def test_it_builds_a_wheel_that_requires_httpx_only(tmp_path: Path) -> None:
    # given: a copy of the package (the build writes beside its sources)
    copy = tmp_path / "python"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    # when: built offline with the setuptools of this environment
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--wheel-dir", str(tmp_path / "dist"), str(copy)],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    # then
    (wheel,) = (tmp_path / "dist").glob("campaign_orders_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(meta))
    assert {"campaign_client/__init__.py", "campaign_client/py.typed"} <= set(names)
    assert metadata["Name"] == "campaign-orders-client"
    required = [r for r in metadata.get_all("Requires-Dist") if "extra ==" not in r]
    assert [r.split("<")[0].split(">")[0].strip() for r in required] == ["httpx"]
