from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts.error_views import api_not_found
from accounts.metrics import metrics_view
from accounts.views import JwksView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/", include("accounts.urls")),
    # Public keys for other services (RFC 8615 well-known location; RFC 7517 JWK Set).
    path(".well-known/jwks.json", JwksView.as_view(), name="jwks"),
    # Prometheus metrics, for a scraper holding METRICS_TOKEN (404 while none is set).
    path("metrics", metrics_view, name="metrics"),
    # Last: any other /api/ path is a JSON 404 even with DEBUG on (Django's debug 404 page is HTML),
    # and a POST without the trailing slash gets that 404 rather than APPEND_SLASH's error.
    re_path(r"^api/", api_not_found),
]

# Django's own errors answer in the API's JSON shape too.
handler400 = "accounts.error_views.bad_request"
handler403 = "accounts.error_views.permission_denied"
handler404 = "accounts.error_views.not_found"
handler500 = "accounts.error_views.server_error"
