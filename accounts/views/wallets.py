"""Sign-In with Ethereum endpoints and the wallet settings page. The page's script (static/js/siwe.js) asks the
wallet for its address, fetches the message to sign from `siwe_challenge`, and posts the signature to `siwe_verify`."""

from __future__ import annotations

from allauth.core import ratelimit
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts import siwe
from accounts.errors import SignUpUnavailable, SiweError
from accounts.http import AuthedRequest
from accounts.models import Wallet
from accounts.net import client_ip
from accounts.redirects import safe_next_url
from accounts.selectors import wallet_exists
from portal.json_input import JsonInputError, parse_json

MAX_BODY = 16 * 1024
# Rates live with allauth's own (ACCOUNT_RATE_LIMITS in portal/settings.py), so sign-in by wallet is throttled in
# the same cache and by the same client address as sign-in by password.
TOO_MANY = "Too many sign-in attempts from your network; wait a minute and try again."
TOO_MANY_SIGNUPS = "Too many new wallet accounts from your network; try again in an hour, or sign up with email."


def _throttled(request: HttpRequest, action: str) -> JsonResponse | None:
    if ratelimit.consume(request, action=action):
        return None
    return JsonResponse({"error": TOO_MANY}, status=429, headers={"Retry-After": "60"})


def _json_body(request: HttpRequest) -> dict[str, object]:
    if len(request.body) > MAX_BODY:
        raise SiweError("The request is too large.")
    try:
        data = parse_json(request.body.decode() or "{}")
    except JsonInputError as error:  # too deep, or a NUL or lone surrogate somewhere: named, never a server error
        raise SiweError(f"{error.path or 'The body'}: {error.message}") from None
    except ValueError:
        raise SiweError("The request body must be JSON.") from None
    if not isinstance(data, dict):
        raise SiweError("The request body must be a JSON object.")
    return data


def _site(request: HttpRequest) -> tuple[str, str]:
    """The domain and URI a message must name: this site as the browser reached it."""
    return request.get_host(), request.build_absolute_uri("/")


@require_GET
def siwe_page(request: HttpRequest) -> HttpResponse:
    # Only a safe `next` reaches the page (and from it the script), so the page never carries another site's URL.
    return render(request, "accounts/siwe.html", {"next": safe_next_url(request, request.GET.get("next"), default="")})


@require_POST
def siwe_challenge(request: HttpRequest) -> JsonResponse:
    if (refused := _throttled(request, "siwe_challenge")) is not None:
        return refused  # each challenge is a stored nonce: unbounded, they would fill the table
    try:
        data = _json_body(request)
        chain_id = data.get("chain_id", 1)
        if not isinstance(chain_id, int) or isinstance(chain_id, bool):
            raise SiweError("chain_id must be a number.")
        domain, uri = _site(request)
        message = siwe.siwe_challenge_issue(
            address=str(data.get("address", "")), chain_id=chain_id, domain=domain, uri=uri
        )
    except SiweError as error:
        return JsonResponse({"error": str(error)}, status=400)
    return JsonResponse({"message": message})


@require_POST
def siwe_verify(request: HttpRequest) -> JsonResponse:
    """Sign in (or sign up) with the signed message; when already signed in, link the wallet instead."""
    if (refused := _throttled(request, "siwe_verify")) is not None:
        return refused
    try:
        data = _json_body(request)
        domain, uri = _site(request)
        verified = siwe.siwe_verify(
            message=data.get("message"),
            signature=data.get("signature"),
            domain=domain,
            uri=uri,
        )
        if request.user.is_authenticated:
            siwe.wallet_link(user=request.user, verified=verified, ip=client_ip(request))
            return JsonResponse({"linked": verified.address, "redirect": reverse("wallets")})
        # A new wallet is a new account with its own organization and allowance: limited per client address. A
        # known wallet signing in again is not counted.
        if not wallet_exists(address=verified.address) and not ratelimit.consume(request, action="siwe_signup"):
            return JsonResponse({"error": TOO_MANY_SIGNUPS}, status=429, headers={"Retry-After": "3600"})
        user = siwe.siwe_sign_in(verified=verified, ip=client_ip(request))
    except SiweError as error:
        return JsonResponse({"error": str(error)}, status=400)
    except SignUpUnavailable as error:
        return JsonResponse({"error": str(error)}, status=503)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return JsonResponse({"signed_in": verified.address, "redirect": safe_next_url(request, data.get("next"))})


@login_required
@require_GET
def wallets(request: AuthedRequest) -> HttpResponse:
    return render(request, "accounts/wallets.html", {"wallets": Wallet.objects.filter(user=request.user)})


@login_required
@require_POST
def wallet_unlink(request: AuthedRequest, wallet_id: int) -> HttpResponse:
    try:
        siwe.wallet_unlink(user=request.user, wallet_id=wallet_id, ip=client_ip(request))
        messages.success(request, "Wallet unlinked.")
    except SiweError as error:
        messages.error(request, str(error))
    return redirect("wallets")
