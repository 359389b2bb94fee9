"""The Console pages owned by identity, one module per area.

``shell`` resolves tenant and organization from the URL and wraps every page
(:func:`identity.console.shell.console_page`); the other apps' Console pages use it too.
Pages: ``users`` (overview, Users, sharing), ``roles``, ``settings`` (Console Settings),
``applications`` and ``application_tabs`` (an application and its tabs), ``api_resources``,
``branding`` (Branding, email templates), ``logs``. Shared parts: ``picker`` (the user picker),
``loginflow`` (the login-flow builder), ``extensions`` (what other apps add to identity's pages).
``config.console_urls`` gathers the pages; this package re-exports nothing.
"""
