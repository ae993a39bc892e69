"""API errors answered as `Status` objects, worded as the real API server words them."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A failed request: the HTTP code and the `Status` body the client decodes."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(resource: Any, name: str, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": resource.plural, **extra}
    if resource.group:
        details["group"] = resource.group
    return details


def not_found(resource: Any, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{resource.qualified_plural} "{name}" not found', _details(resource, name))


def already_exists(resource: Any, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{resource.qualified_plural} "{name}" already exists', _details(resource, name))


def conflict(resource: Any, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {resource.qualified_plural} "{name}": {why}',
        _details(resource, name),
    )


def stale_write(resource: Any, name: str) -> ApiError:
    return conflict(resource, name, "the object has been modified; please apply your changes to the latest version and try again")


def forbidden(resource: Any, name: str, verb: str, namespace: str | None, user: str) -> ApiError:
    subject = f'{resource.qualified_plural} "{name}"' if name else resource.qualified_plural
    scope = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    message = f'{subject} is forbidden: User "{user}" cannot {verb} resource "{resource.plural}" in API group "{resource.group}"{scope}'
    return ApiError(403, "Forbidden", message, _details(resource, name))


def invalid(resource: Any, name: str, causes: list[dict[str, str]]) -> ApiError:
    listed = [f"{cause['field']}: {cause['message']}" for cause in causes]
    summary = listed[0] if len(listed) == 1 else "[" + ", ".join(listed) + "]"
    details = _details(resource, name, causes=causes)
    details["kind"] = resource.kind
    return ApiError(422, "Invalid", f'{resource.qualified_kind} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unsupported_media_type(message: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", message)


def internal_error(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]})


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)
