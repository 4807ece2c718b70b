"""email threading and list headers

episode.message_id: the Message-ID of the first email about the episode; its reminders and the
"resolved" email name it in In-Reply-To and References so mail clients thread them.
notification.headers: the extra headers of an email (JSON: In-Reply-To, References, List-Id,
List-Unsubscribe), kept with the row so a retry sends the same message.


Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 19:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('episode', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message_id', sa.String(length=200), nullable=True))
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.add_column(sa.Column('headers', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_column('headers')
    with op.batch_alter_table('episode', schema=None) as batch_op:
        batch_op.drop_column('message_id')
