"""Views of the smoke site. Faults are switched on by writing their names into the file that
SMOKESITE_FAULTS names (the test fixture does), so a test can break the running site."""

import json
import os
import socket
import struct
import time
from dataclasses import dataclass

from django.contrib.auth import authenticate, login
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.middleware.csrf import get_token
from django.views.decorators.http import require_http_methods
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable

NOTES: dict[int, dict] = {}


def faults() -> set[str]:
    try:
        with open(os.environ["SMOKESITE_FAULTS"]) as file:
            return set(file.read().split())
    except FileNotFoundError:
        return set()


@dataclass
class Broker(HealthCheck):
    """The message broker as django-health-check sees it; down when the 'broker' fault is on."""

    def run(self):
        if "broker" in faults():
            raise ServiceUnavailable("broker unreachable at amqp://broker:5672")


def csrf(request):
    return JsonResponse({"csrfToken": get_token(request)})


@require_http_methods(["POST"])
def api_login(request):
    try:
        data = json.loads(request.body)
    except ValueError:
        return JsonResponse({"error": "expected a JSON body"}, status=400)
    user = authenticate(request, username=data.get("username"), password=data.get("password"))
    if user is None:
        return JsonResponse({"error": "invalid credentials"}, status=400)
    login(request, user)  # rotates the CSRF token
    return JsonResponse({"username": user.username})


@login_required
def me(request):
    return JsonResponse({"username": request.user.username})


@login_required
@require_http_methods(["POST"])
def notes(request):
    note_id = len(NOTES) + 1
    NOTES[note_id] = {"id": note_id, "title": json.loads(request.body)["title"]}
    return JsonResponse(NOTES[note_id], status=201)


@login_required
@require_http_methods(["GET", "DELETE"])
def note(request, note_id):
    if note_id not in NOTES:
        return JsonResponse({"error": "no such note"}, status=404)
    if request.method == "DELETE":
        del NOTES[note_id]
        return HttpResponse(status=204)
    return JsonResponse(NOTES[note_id])


@login_required
def dashboard(request):
    return HttpResponse("<html><head><title>Dashboard</title></head><body>Welcome</body></html>")


def hop(request, left):
    return HttpResponseRedirect(f"/hop/{left - 1}/" if left > 0 else "/api/csrf/")


def slow(request):
    time.sleep(float(request.GET.get("seconds", 3)))
    return JsonResponse({"status": "ok"})


def trickle(request):
    def chunks():
        for _ in range(10):
            yield b"x" * 10
            time.sleep(0.5)

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def reset(request):
    # Close the client's connection with a TCP reset (SO_LINGER 0), as a crashing proxy does.
    sock = socket.fromfd(request.META["gunicorn.socket"].fileno(), socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    request.META["gunicorn.socket"].close()
    return HttpResponse(status=500)
