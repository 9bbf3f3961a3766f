# expect: none
"""Moves credit between two keys atomically with a transaction, notifying after the write."""
from workers import DurableObject


class Wallet(DurableObject):
    async def transfer(self, src, dst, amount):
        async def move(txn):
            balances = await txn.get([src, dst])
            if balances.get(src, 0) < amount:
                return False
            await txn.put({src: balances.get(src, 0) - amount, dst: balances.get(dst, 0) + amount})
            return True

        ok = await self.ctx.storage.transaction(move)
        if ok:
            await self.env.LEDGER.getByName("main").record(src, dst, amount)
        return ok
