"""sessions, sign-in throttle, in-doubt emails

account.session_key: a random value carried in the session cookie instead of a piece of the
password hash; replaced by sign-out and a password change, which ends every session of the
account. Existing accounts get a key each (their current sessions end: people sign in again).
sign_in_failure: refused sign-ins, counted per email and per (address, email) by every worker,
and kept across restarts. notification.in_doubt_at: the SMTP server got the whole message but
did not answer in time; such an email is not sent again unless an admin asks.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-12 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('sign_in_failure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('failed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sign_in_failure'))
    )
    with op.batch_alter_table('sign_in_failure', schema=None) as batch_op:
        batch_op.create_index('ix_sign_in_failure_email_at', ['email', 'failed_at'], unique=False)
        batch_op.create_index('ix_sign_in_failure_failed_at', ['failed_at'], unique=False)

    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_key', sa.String(length=64), nullable=True))
    _backfill_session_keys()
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.alter_column('session_key', existing_type=sa.String(length=64), nullable=False)

    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.add_column(sa.Column('in_doubt_at', sa.DateTime(timezone=True), nullable=True))


def _backfill_session_keys():
    import secrets

    conn = op.get_bind()
    account = sa.table("account", sa.column("id"), sa.column("session_key"))
    for (account_id,) in conn.execute(sa.select(account.c.id)).all():
        conn.execute(sa.update(account).where(account.c.id == account_id)
                     .values(session_key=secrets.token_urlsafe(24)))


def downgrade():
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_column('in_doubt_at')

    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_column('session_key')

    with op.batch_alter_table('sign_in_failure', schema=None) as batch_op:
        batch_op.drop_index('ix_sign_in_failure_failed_at')
        batch_op.drop_index('ix_sign_in_failure_email_at')

    op.drop_table('sign_in_failure')
