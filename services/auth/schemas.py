"""Request and response schemas of the auth API."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from services.auth.password_policy import WeakPassword, check_password

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 1024


class CredentialsSchema(Schema):
    """Email and password; the email is trimmed and lower-cased before validation."""

    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(required=True, validate=validate.Length(max=PASSWORD_MAX_LENGTH))

    @pre_load
    def normalize_email(self, data, **_kwargs):
        """Trim and lower-case the email so comparisons are stable."""
        if isinstance(data, dict) and isinstance(data.get("email"), str):
            data = {**data, "email": data["email"].strip().lower()}
        return data


class RegistrationSchema(CredentialsSchema):
    """Credentials that must also satisfy the password policy."""

    password = fields.String(
        required=True,
        validate=validate.Length(
            min=PASSWORD_MIN_LENGTH,
            max=PASSWORD_MAX_LENGTH,
            error=f"Password must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters.",
        ),
    )

    @validates_schema
    def password_is_not_guessable(self, data, **_kwargs):
        """A password equal to the email, common or easy to guess (zxcvbn) is refused."""
        password = data.get("password", "")
        if password.strip().lower() == data.get("email"):
            raise ValidationError("Password must not be the email address.", "password")
        try:
            check_password(password, email=data.get("email"))
        except WeakPassword as exc:
            raise ValidationError(str(exc), "password") from None


class RefreshSchema(Schema):
    """A refresh token to rotate."""

    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=4096))


class UserSchema(Schema):
    """A user as the API shows it."""

    id = fields.String()
    email = fields.String()
    email_verified = fields.Boolean()
    created_at = fields.DateTime()


def user_document(user) -> dict:
    """What `UserSchema().dump(user)` answers, without marshmallow's per-call cost (`me`)."""
    return {
        "id": user.id,
        "email": user.email,
        "email_verified": user.email_verified,
        "created_at": user.created_at.isoformat(),
    }


class TokensSchema(Schema):
    """An issued access/refresh pair."""

    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()
    user = fields.Nested(UserSchema)


class JwksSchema(Schema):
    """A JSON Web Key Set."""

    keys = fields.List(fields.Dict())


def _new_password_field() -> fields.String:
    return fields.String(
        required=True,
        validate=validate.Length(
            min=PASSWORD_MIN_LENGTH,
            max=PASSWORD_MAX_LENGTH,
            error=f"Password must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters.",
        ),
    )


class PasswordResetRequestSchema(Schema):
    """The email of an account whose password is forgotten."""

    email = fields.Email(required=True, validate=validate.Length(max=254))

    @pre_load
    def normalize_email(self, data, **_kwargs):
        """Trim and lower-case the email, as registration stores it."""
        if isinstance(data, dict) and isinstance(data.get("email"), str):
            data = {**data, "email": data["email"].strip().lower()}
        return data


class PasswordResetSchema(Schema):
    """A mailed reset token and the new password."""

    token = fields.String(required=True, validate=validate.Length(min=1, max=200))
    new_password = _new_password_field()


class PasswordChangeSchema(Schema):
    """The current password and the new one."""

    current_password = fields.String(
        required=True, validate=validate.Length(max=PASSWORD_MAX_LENGTH)
    )
    new_password = _new_password_field()


class EmailVerificationSchema(Schema):
    """A mailed email verification token."""

    token = fields.String(required=True, validate=validate.Length(min=1, max=200))


class AccountDeletionSchema(Schema):
    """The account's password (none for an account that signs in only through a provider)."""

    password = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=PASSWORD_MAX_LENGTH)
    )


class AccountDeletionStartedSchema(Schema):
    """The deletion saga that now removes the account everywhere."""

    saga_id = fields.String(required=True)
