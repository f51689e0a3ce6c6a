from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("health/", views.HealthView.as_view(), name="health"),
    path("auth/csrf/", views.CsrfView.as_view(), name="csrf"),
    path("auth/register/", views.RegisterView.as_view(), name="register"),
    path("auth/login/", views.LoginView.as_view(), name="login"),
    path("auth/refresh/", views.RefreshView.as_view(), name="refresh"),
    path("auth/logout/", views.LogoutView.as_view(), name="logout"),
    path("auth/logout-all/", views.LogoutAllView.as_view(), name="logout-all"),
    path("auth/sessions/", views.SessionListView.as_view(), name="sessions"),
    path("auth/sessions/<uuid:session_id>/", views.SessionDetailView.as_view(), name="session-detail"),
    path("auth/password/change/", views.PasswordChangeView.as_view(), name="password-change"),
    path("auth/password/reset/", views.PasswordResetView.as_view(), name="password-reset"),
    path(
        "auth/password/reset/confirm/",
        views.PasswordResetConfirmView.as_view(),
        name="password-reset-confirm",
    ),
    path("users/me/", views.MeView.as_view(), name="me"),
    path("auth/email/verify/", views.EmailVerifyView.as_view(), name="email-verify"),
    path("auth/email/verify/resend/", views.EmailVerifyResendView.as_view(), name="email-verify-resend"),
    path("auth/email/change/", views.EmailChangeView.as_view(), name="email-change"),
    path("auth/mfa/", views.MfaStateView.as_view(), name="mfa"),
    path("auth/mfa/totp/", views.TotpView.as_view(), name="mfa-totp"),
    path("auth/mfa/totp/confirm/", views.TotpConfirmView.as_view(), name="mfa-totp-confirm"),
    path("auth/mfa/recovery-codes/", views.RecoveryCodesView.as_view(), name="mfa-recovery-codes"),
    path("auth/mfa/verify/", views.MfaVerifyView.as_view(), name="mfa-verify"),
    path("auth/reauthenticate/", views.ReauthenticateView.as_view(), name="reauthenticate"),
    path(
        "auth/passkeys/register/options/",
        views.PasskeyRegisterOptionsView.as_view(),
        name="passkey-register-options",
    ),
    path("auth/passkeys/register/", views.PasskeyRegisterView.as_view(), name="passkey-register"),
    path("auth/passkeys/<uuid:passkey_id>/", views.PasskeyDetailView.as_view(), name="passkey-detail"),
    path(
        "auth/passkeys/login/options/", views.PasskeyLoginOptionsView.as_view(), name="passkey-login-options"
    ),
    path("auth/passkeys/login/", views.PasskeyLoginView.as_view(), name="passkey-login"),
    path(
        "auth/passkeys/reauthenticate/options/",
        views.PasskeyReauthenticateOptionsView.as_view(),
        name="passkey-reauthenticate-options",
    ),
]
