from django.apps import AppConfig


class ImpersonationConfig(AppConfig):
    name = "impersonation"
    verbose_name = "Impersonation"

    def ready(self) -> None:
        """Plug into identity's extension points (identity never imports impersonation):
        the Impersonate User panel of a Console user page (``identity.console.extensions``)
        and the ``impersonation_started`` email kind (``identity.notifications.emails``)."""
        from identity.console.extensions import UserPagePanel, user_page_panel_register
        from impersonation import emails
        from impersonation.console import impersonate_user_panel

        user_page_panel_register(
            UserPagePanel(
                name="impersonate-user",
                template="impersonation/console/_user_action.html",
                context=impersonate_user_panel,
            )
        )
        emails.register()
