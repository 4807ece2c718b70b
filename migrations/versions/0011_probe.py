"""endpoint check: the target's credential (token encrypted) and the check's history

endpoint_credential: per job, the tenant URL and the secret token (Fernet-encrypted with the key
in DASHBOARD_SECRET_ENCRYPTION_KEY), when it was set and by whom, the token's expiry if it carries one.
endpoint_check: each run of the check (CLI or job page): outcome and each check's result (JSON).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 21:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'endpoint_credential',
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('tenant_url', sa.String(length=500), nullable=False),
        sa.Column('token_encrypted', sa.Text(), nullable=False),
        sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('set_by', sa.String(length=320), nullable=False),
        sa.Column('token_expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['job_id'], ['job.id'], name=op.f('fk_endpoint_credential_job_id_job'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('job_id', name=op.f('pk_endpoint_credential')),
    )
    op.create_table(
        'endpoint_check',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('outcome', sa.String(length=10), nullable=False),
        sa.Column('tenant_url', sa.String(length=500), nullable=False),
        sa.Column('checks', sa.Text(), nullable=False),
        sa.Column('by', sa.String(length=320), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['job.id'], name=op.f('fk_endpoint_check_job_id_job'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_endpoint_check')),
    )
    with op.batch_alter_table('endpoint_check', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_endpoint_check_job_id'), ['job_id'], unique=False)


def downgrade():
    with op.batch_alter_table('endpoint_check', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_endpoint_check_job_id'))
    op.drop_table('endpoint_check')
    op.drop_table('endpoint_credential')
