"""scim_user.fold: the folded state of a user's history, so a batch folds only its own cycles

JSON [prefix, last cycle's outcome] (dashboard/tracking/fold.py). NULL for every existing row:
the first batch that touches a user reloads their history once and stores it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 21:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('scim_user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fold', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('scim_user', schema=None) as batch_op:
        batch_op.drop_column('fold')
