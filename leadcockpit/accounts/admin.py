from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils.translation import gettext_lazy as _

from .models import Team, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ["username", "email", "first_name", "last_name", "team", "is_staff", "is_active"]
    list_filter = ["groups", "team", "is_staff", "is_active"]
    list_select_related = ["team"]
    fieldsets = [*BaseUserAdmin.fieldsets, (_("Team"), {"fields": ["team"]})]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "kind"]
    list_filter = ["kind"]
    search_fields = ["name"]
