"""The only non-stock pieces: a health check and an admin-less sign-in page, so that DOT's
/o/authorize/ can redirect an anonymous browser to LOGIN_URL and get it back signed in."""

from django.contrib.auth import authenticate, login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.utils.html import escape
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt

FORM = """<!doctype html><title>Sign in</title>
<form method="post"><input type="hidden" name="next" value="{next}">
<input name="username"><input type="password" name="password"><button>Sign in</button></form>
<p>{error}</p>"""


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@csrf_exempt  # benchmark-only page on loopback
def login_view(request: HttpRequest) -> HttpResponse:
    next_url = request.POST.get("next") or request.GET.get("next") or "/"
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = "/"
    error = ""
    if request.method == "POST":
        user = authenticate(
            request, username=request.POST.get("username"), password=request.POST.get("password")
        )
        if user is not None:
            login(request, user)
            return HttpResponseRedirect(next_url)
        error = "Wrong username or password."
    return HttpResponse(FORM.format(next=escape(next_url), error=error), status=400 if error else 200)
