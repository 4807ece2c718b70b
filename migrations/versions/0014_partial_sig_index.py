"""ix_exchange_sig only over the exchanges that have a failure signature

Most exchanges succeed and have no signature: the whole index held a NULL entry for each of them
(10.3 MB of a 604 MB database at 1,000,000 exchanges, 2.6% of its rows not NULL). Every query on
it names a signature (`sig_id = ?`, `IN (...)`, `IS NOT NULL`), which both databases match to a
partial index `WHERE sig_id IS NOT NULL`.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 00:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

_WHERE = sa.text('sig_id IS NOT NULL')


def upgrade():
    op.drop_index('ix_exchange_sig', table_name='exchange')
    op.create_index('ix_exchange_sig', 'exchange', ['sig_id'], unique=False,
                    sqlite_where=_WHERE, postgresql_where=_WHERE)


def downgrade():
    op.drop_index('ix_exchange_sig', table_name='exchange')
    op.create_index('ix_exchange_sig', 'exchange', ['sig_id'], unique=False)
