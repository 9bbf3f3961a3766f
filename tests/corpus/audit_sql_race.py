# expect: await-between-read-and-write
"""Account balances in SQL, with a fraud check between the read and the write."""
from workers import DurableObject


class Account(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.sql = ctx.storage.sql
        self.sql.exec("CREATE TABLE IF NOT EXISTS balance (id INTEGER PRIMARY KEY, cents INTEGER)")

    async def withdraw(self, cents):
        row = self.sql.exec("SELECT cents FROM balance WHERE id = 1").toArray()
        current = row[0]["cents"] if row else 0
        if current < cents:
            raise ValueError("insufficient funds")
        verdict = await self.env.FRAUD.getByName("global").score(cents)
        if verdict > 0.9:
            raise ValueError("blocked")
        self.sql.exec("INSERT OR REPLACE INTO balance (id, cents) VALUES (1, ?)", current - cents)
        return current - cents
