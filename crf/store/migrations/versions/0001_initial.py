"""The first schema: inputs, receipts, values, audit trail, findings, queries and their events.

Revision ID: 0001
Revises:
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from crf.store.append_only import protect

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY = ("store_info", "runs", "inputs", "receipts", "item_values", "return_visits", "value_changes", "findings",
               "query_events")


def upgrade() -> None:
    op.create_table('runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('command', sa.String(length=20), nullable=False),
    sa.Column('received', sa.String(length=32), nullable=False),
    sa.Column('tool_version', sa.String(length=20), nullable=False),
    sa.Column('definition_hash', sa.String(length=80), nullable=False),
    sa.Column('by', sa.Text(), server_default='', nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('store_info',
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('inputs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('file', sa.Text(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('received', sa.String(length=32), nullable=False),
    sa.Column('site', sa.String(length=20), server_default='', nullable=False),
    sa.Column('subject', sa.String(length=40), server_default='', nullable=False),
    sa.Column('form_version', sa.String(length=20), server_default='', nullable=False),
    sa.Column('definition_hash', sa.String(length=80), server_default='', nullable=False),
    sa.Column('usable', sa.Boolean(), nullable=False),
    sa.Column('return_number', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sha256'),
    sa.UniqueConstraint('site', 'subject', 'return_number', name='uq_inputs_return_number')
    )
    op.create_index('ix_inputs_subject', 'inputs', ['site', 'subject'], unique=False)
    op.create_table('findings',
    sa.Column('input_id', sa.Integer(), nullable=False),
    sa.Column('finding_id', sa.String(length=12), nullable=False),
    sa.Column('rule', sa.String(length=40), nullable=False),
    sa.Column('severity', sa.String(length=20), nullable=False),
    sa.Column('category', sa.String(length=40), nullable=False),
    sa.Column('site', sa.String(length=20), nullable=False),
    sa.Column('subject', sa.String(length=40), nullable=False),
    sa.Column('visit', sa.String(length=40), nullable=False),
    sa.Column('form', sa.String(length=60), nullable=False),
    sa.Column('field', sa.String(length=60), nullable=False),
    sa.Column('log_row', sa.Integer(), nullable=True),
    sa.Column('sheet', sa.Text(), nullable=False),
    sa.Column('cell', sa.String(length=12), nullable=False),
    sa.Column('value', sa.Text(), nullable=True),
    sa.Column('expected', sa.Text(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['input_id'], ['inputs.id'], ),
    sa.PrimaryKeyConstraint('input_id', 'finding_id')
    )
    op.create_table('item_values',
    sa.Column('input_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=200), nullable=False),
    sa.Column('visit', sa.String(length=40), nullable=False),
    sa.Column('form', sa.String(length=60), nullable=False),
    sa.Column('item', sa.String(length=60), nullable=False),
    sa.Column('log_row', sa.Integer(), nullable=True),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('sheet', sa.Text(), server_default='', nullable=False),
    sa.Column('cell', sa.String(length=12), server_default='', nullable=False),
    sa.ForeignKeyConstraint(['input_id'], ['inputs.id'], ),
    sa.PrimaryKeyConstraint('input_id', 'path')
    )
    op.create_table('queries',
    sa.Column('id', sa.String(length=12), nullable=False),
    sa.Column('site', sa.String(length=20), nullable=False),
    sa.Column('subject', sa.String(length=40), nullable=False),
    sa.Column('rule', sa.String(length=40), nullable=False),
    sa.Column('severity', sa.String(length=20), nullable=False),
    sa.Column('visit', sa.String(length=40), nullable=False),
    sa.Column('form', sa.String(length=60), nullable=False),
    sa.Column('field', sa.String(length=60), nullable=False),
    sa.Column('log_row', sa.Integer(), nullable=True),
    sa.Column('sheet', sa.Text(), nullable=False),
    sa.Column('cell', sa.String(length=12), nullable=False),
    sa.Column('value', sa.Text(), nullable=True),
    sa.Column('expected', sa.Text(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('present', sa.Boolean(), nullable=False),
    sa.Column('first_input_id', sa.Integer(), nullable=False),
    sa.Column('first_seen', sa.String(length=32), nullable=False),
    sa.Column('last_input_id', sa.Integer(), nullable=False),
    sa.Column('last_seen', sa.String(length=32), nullable=False),
    sa.Column('status_since', sa.String(length=32), nullable=False),
    sa.Column('answer', sa.Text(), server_default='', nullable=False),
    sa.Column('corrected_value', sa.Text(), server_default='', nullable=False),
    sa.Column('answered_by', sa.Text(), server_default='', nullable=False),
    sa.Column('answered_on', sa.Text(), server_default='', nullable=False),
    sa.Column('close_reason', sa.Text(), server_default='', nullable=False),
    sa.ForeignKeyConstraint(['first_input_id'], ['inputs.id'], ),
    sa.ForeignKeyConstraint(['last_input_id'], ['inputs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_queries_subject', 'queries', ['site', 'subject'], unique=False)
    op.create_table('receipts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('input_id', sa.Integer(), nullable=False),
    sa.Column('file', sa.Text(), nullable=False),
    sa.Column('already_received', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['input_id'], ['inputs.id'], ),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('return_visits',
    sa.Column('input_id', sa.Integer(), nullable=False),
    sa.Column('visit', sa.String(length=40), nullable=False),
    sa.Column('present', sa.Boolean(), nullable=False),
    sa.Column('date', sa.String(length=10), nullable=True),
    sa.Column('window', sa.String(length=3), nullable=True),
    sa.Column('study_day', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['input_id'], ['inputs.id'], ),
    sa.PrimaryKeyConstraint('input_id', 'visit')
    )
    op.create_table('value_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('input_id', sa.Integer(), nullable=False),
    sa.Column('previous_input_id', sa.Integer(), nullable=False),
    sa.Column('site', sa.String(length=20), nullable=False),
    sa.Column('subject', sa.String(length=40), nullable=False),
    sa.Column('path', sa.String(length=200), nullable=False),
    sa.Column('visit', sa.String(length=40), nullable=False),
    sa.Column('form', sa.String(length=60), nullable=False),
    sa.Column('item', sa.String(length=60), nullable=False),
    sa.Column('log_row', sa.Integer(), nullable=True),
    sa.Column('old_value', sa.Text(), nullable=True),
    sa.Column('new_value', sa.Text(), nullable=True),
    sa.Column('sheet', sa.Text(), server_default='', nullable=False),
    sa.Column('cell', sa.String(length=12), server_default='', nullable=False),
    sa.ForeignKeyConstraint(['input_id'], ['inputs.id'], ),
    sa.ForeignKeyConstraint(['previous_input_id'], ['inputs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_value_changes_subject', 'value_changes', ['site', 'subject'], unique=False)
    op.create_table('query_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('query_id', sa.String(length=12), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('input_id', sa.Integer(), nullable=True),
    sa.Column('event', sa.String(length=12), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('at', sa.String(length=32), nullable=False),
    sa.Column('by', sa.Text(), server_default='', nullable=False),
    sa.Column('text', sa.Text(), server_default='', nullable=False),
    sa.Column('corrected_value', sa.Text(), server_default='', nullable=False),
    sa.ForeignKeyConstraint(['input_id'], ['inputs.id'], ),
    sa.ForeignKeyConstraint(['query_id'], ['queries.id'], ),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_query_events_query', 'query_events', ['query_id'], unique=False)

    for table in APPEND_ONLY:
        protect(op.get_bind(), table)


def downgrade() -> None:
    raise NotImplementedError("a study store is never downgraded: its history must not be lost")
