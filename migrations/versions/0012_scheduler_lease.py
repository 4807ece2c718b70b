"""scheduler lease and run counts

scheduler_lease: which scheduler process is the active one (holder, expires_us); a second one
waits as a hot standby and takes the lease once it expires. heartbeat_us feeds /healthz.
scheduler_run_stat: per scheduled job, its runs and errors (for /metrics in the web workers).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 21:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'scheduler_lease',
        sa.Column('name', sa.String(length=50), nullable=False),
        sa.Column('holder', sa.String(length=200), nullable=False),
        sa.Column('expires_us', sa.BigInteger(), nullable=False),
        sa.Column('heartbeat_us', sa.BigInteger(), nullable=False),
        sa.Column('acquired_us', sa.BigInteger(), nullable=False),
        sa.Column('takeovers', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_scheduler_lease')),
    )
    op.create_table(
        'scheduler_run_stat',
        sa.Column('job', sa.String(length=50), nullable=False),
        sa.Column('runs', sa.BigInteger(), nullable=False),
        sa.Column('errors', sa.BigInteger(), nullable=False),
        sa.Column('last_run_us', sa.BigInteger(), nullable=True),
        sa.Column('last_error_us', sa.BigInteger(), nullable=True),
        sa.Column('last_duration_ms', sa.Integer(), nullable=True),
        sa.Column('last_holder', sa.String(length=200), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('job', name=op.f('pk_scheduler_run_stat')),
    )


def downgrade():
    op.drop_table('scheduler_run_stat')
    op.drop_table('scheduler_lease')
