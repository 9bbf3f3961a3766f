# expect: await-between-read-and-write
"""Inventory that checks a pricing service between reading and writing the stock."""
from workers import DurableObject, fetch


class Inventory(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.blockConcurrencyWhile(self.load)

    async def load(self):
        self.stock = await self.ctx.storage.get("stock") or {}

    async def reserve(self, sku, qty):
        available = self.stock.get(sku, 0)
        if available < qty:
            return {"ok": False, "available": available}
        quote = await fetch(f"https://pricing.example.com/quote?sku={sku}&qty={qty}")
        price = (await quote.json())["price"]
        self.stock[sku] = available - qty
        self.ctx.storage.put("stock", self.stock)
        return {"ok": True, "price": price}

    async def restock(self, sku, qty):
        self.stock[sku] = self.stock.get(sku, 0) + qty
        self.ctx.storage.put("stock", self.stock)
