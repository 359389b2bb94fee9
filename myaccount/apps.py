from django.apps import AppConfig


class MyAccountConfig(AppConfig):
    name = "myaccount"
    verbose_name = "My Account"
