"""A URLconf for tests/test_mail.py: one view that sends a mail from inside its transaction, as the
account flows do (``?then=fail`` raises after enqueuing, so the transaction rolls back)."""

from django.db import transaction
from django.http import JsonResponse
from django.urls import path

from accounts.mail import mail_send_later


@transaction.atomic
def send_hello(request):
    mail_send_later(
        to=request.POST["to"],
        template="hello",
        context={"link": request.POST.get("link", "")},
        context_from=request.POST.get("context_from") or None,
    )
    if request.GET.get("then") == "fail":
        raise RuntimeError("the request fails after enqueuing")
    return JsonResponse({"detail": "queued"}, status=202)


urlpatterns = [path("hello/", send_hello)]
