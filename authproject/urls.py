from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/", include("accounts.urls")),
]

# Django's own errors answer in the API's JSON shape too.
handler400 = "accounts.exceptions.bad_request"
handler403 = "accounts.exceptions.permission_denied"
handler404 = "accounts.exceptions.not_found"
handler500 = "accounts.exceptions.server_error"
