"""Example Python Lambda function monitored by the CloudReactor layer (template.yaml,
PythonExampleFunction). The function has no CloudReactor code at all: the extension reports
each invocation, and the exec wrapper (AWS_LAMBDA_EXEC_WRAPPER) resolved DB_PASSWORD from
Secrets Manager before the runtime started. Progress can optionally be sent to the extension
as a UDP status update."""

import json
import os
import socket


def send_status(**fields):
    """Sends a status update to the extension (one JSON line over UDP to 127.0.0.1)."""
    port = int(os.environ.get("PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT", "2373"))
    message = (json.dumps(fields) + "\n").encode("utf-8")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(message, ("127.0.0.1", port))


def handler(event, context):
    items = event.get("items", []) if isinstance(event, dict) else []
    send_status(success_count=len(items), last_status_message=f"processed {len(items)} item(s)")
    return {"processed": len(items), "db_password_is_set": bool(os.environ.get("DB_PASSWORD"))}
